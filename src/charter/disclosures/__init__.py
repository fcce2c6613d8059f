"""Disclosures and transfers: what leaves OMNI, guarded by the policy (C21, C22, C24)."""
