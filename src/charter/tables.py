"""Every feature's tables, imported so that `Base.metadata` is complete (migrations, tests)."""

from __future__ import annotations

from charter.audit import models as audit_models
from charter.consent import models as consent_models
from charter.db import Base
from charter.disclosures import models as disclosure_models
from charter.jobs import models as job_models
from charter.mail import models as mail_models
from charter.requests import models as request_models
from charter.staff import models as staff_models
from charter.vault import models as vault_models

MODEL_MODULES = (
    audit_models,
    consent_models,
    disclosure_models,
    job_models,
    mail_models,
    request_models,
    staff_models,
    vault_models,
)
metadata = Base.metadata
