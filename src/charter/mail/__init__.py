"""Mail out: messages queued in the transaction of the change that causes them, sent after
commit by a sender that loses none and sends none twice (`Mailer`: the outbox or SMTP)."""
