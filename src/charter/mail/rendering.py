"""Mail templates (Jinja2): each feature keeps its own beside its code, as a subject, a plain
text and an HTML file: `<package>/templates/<name>.subject.txt.j2`, `.txt.j2`, `.html.j2`.
HTML is autoescaped; a value the template does not receive is an error, not a blank."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2


@dataclass(frozen=True)
class MailTemplate:
    """A message template of the feature `package` (a module path, e.g. `charter.mail`)."""

    package: str
    name: str

    @property
    def label(self) -> str:
        """How the outbox names it."""
        return f"{self.package.removeprefix('charter.')}:{self.name}"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class TemplateProblem(ValueError):
    """A template is missing, or needs a value it was not given; names the template only."""


# The notice sent to each person affected by a business transfer (C24); its context:
# `acquirer`, and optionally `transfer` (what is transferred), `effective_on`, `contact`.
BUSINESS_TRANSFER_NOTICE = MailTemplate("charter.mail", "business_transfer_notice")


@functools.cache
def _environments(package: str) -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.PackageLoader(package, "templates")
    plain = jinja2.Environment(
        loader=loader,
        autoescape=False,  # noqa: S701 - plain text and the subject are not HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return plain, html


def render_mail(template: MailTemplate, context: Mapping[str, Any]) -> RenderedMail:
    """The subject, text and HTML of `template` with `context`."""
    values = dict(context)
    try:
        plain, html = _environments(template.package)
        subject = plain.get_template(f"{template.name}.subject.txt.j2").render(values)
        text = plain.get_template(f"{template.name}.txt.j2").render(values)
        page = html.get_template(f"{template.name}.html.j2").render(values)
    except jinja2.TemplateNotFound:
        raise TemplateProblem(f"no mail template {template.label}") from None
    except jinja2.UndefinedError:
        # Jinja's message names the missing value, never the values given.
        raise TemplateProblem(f"the mail template {template.label} lacks a value") from None
    subject = " ".join(subject.split())
    return RenderedMail(subject=subject, text=text, html=page)
