"""Demo data: conversations in every status over the last ten days, with transcripts, intents, extractions (some
verified), manifests in every status, satisfaction scores, and one conversation that reached a submitted build.

Idempotent: demo conversations carry ``metadata.demo == "intake"``; when any exist nothing is added. Everything
goes through ``intake.services`` (the rule-based extractor reads the customer's messages), so the data is what
the application itself would have recorded.
"""

import datetime as dt

from django.db import connection, transaction
from django.db.models import F

from honua.registry import demo_loader
from intake import services
from intake.models import Conversation, ConversationIntent, ConversationMessage, RequirementExtraction
from licensing.models import Customer, License
from licensing.selectors import usable_licenses
from licensing.services import license_issue

DEMO_TAG = "intake"
DEMO_METADATA = {"demo": DEMO_TAG}
ASSISTANT_MODEL = "claude-sonnet-4"
# The licensing demo's pro customer (it has an ECR credential); any customer with a usable license otherwise.
PREFERRED_CUSTOMER = "Blue Harbor Analytics"
FALLBACK_CUSTOMER = "Kona Geospatial (intake demo)"

# (status, days ago, channel, [user messages], manifest steps, satisfaction, verifications)
# manifest steps: "generate", "verify", "approve", "submit"; verifications (value, True/False or a corrected value)
# are applied at the "verify" step, or before the first step when there is none.
SCRIPTS = [
    (
        "completed",
        6,
        "web",
        [
            "I need a python 3.12 image with gdal for arm64 and amd64, push to my ECR",
            "also add numpy and expose port 8080",
        ],
        ["generate", "approve", "submit"],
        (5, "Exactly what I asked for."),
        [("gdal", True), ("numpy", True), ("ecr", True)],
    ),
    (
        "completed",
        4,
        "cli",
        [
            "build a node 20 service based on debian:bookworm-slim with git",
            "actually switch to node 22 and set NODE_ENV=production",
        ],
        ["generate", "verify", "generate", "approve"],
        (3, "Took two tries."),
        [("node 20", "node 22"), ("git", False)],
    ),
    ("completed", 3, "slack", ["how do cached builds work?"], [], (4, ""), []),
    (
        "active",
        0,
        "web",
        ["I want a container with ffmpeg and imagemagick for amd64, push to ghcr"],
        ["generate"],
        None,
        [("imagemagick", False)],
    ),
    ("active", 0, "api", ["Build me a Go 1.22 service on alpine:3.20 with curl"], ["generate", "approve"], None, []),
    ("active", 0, "web", ["what's the status of my build?"], [], None, []),
    ("abandoned", 8, "web", ["python with pandas"], ["generate"], (2, "Gave up."), [("pandas", True)]),
    ("abandoned", 5, "slack", ["hello"], [], None, []),
    ("expired", 9, "web", ["ruby 3.3 with rails and postgresql"], ["generate"], None, [("rails", True)]),
    ("expired", 7, "cli", ["can you cancel that?"], [], None, []),
]

ASSISTANT_REPLY = "Noted. Here is what I understood; I will prepare a manifest when you are ready."


@demo_loader("intake")
def load(*, rng, scale: str) -> str:
    if scale != "demo":
        return "nothing for this scale"
    if Conversation.objects.filter(metadata__demo=DEMO_TAG).exists():
        return f"already loaded ({Conversation.objects.filter(metadata__demo=DEMO_TAG).count()} demo conversations)"
    with transaction.atomic():
        customer = _customer()
        submitted = 0
        for status, days_ago, channel, texts, steps, rating, verdicts in SCRIPTS:
            conversation = services.conversation_start(
                customer=customer,
                model=ASSISTANT_MODEL,
                channel=channel,
                title=texts[0][:60],
                metadata={"demo": DEMO_TAG},
            )
            for text in texts:
                message = services.message_add(
                    conversation=conversation,
                    role="user",
                    content=text,
                    prompt_tokens=0,
                    completion_tokens=0,
                    cost=0,
                )
                services.message_extract(message=message)
                services.message_add(
                    conversation=conversation,
                    role="assistant",
                    content=ASSISTANT_REPLY,
                    prompt_tokens=rng.randint(400, 3000),
                    completion_tokens=rng.randint(50, 600),
                    latency_ms=rng.randint(300, 4000),
                )
            if "verify" not in steps:
                _verify(conversation, verdicts)
            manifest = None
            for step in steps:
                if step == "verify":
                    _verify(conversation, verdicts)
                elif step == "generate":
                    manifest = services.manifest_generate(conversation=conversation)
                elif step == "approve":
                    manifest = services.manifest_approve(manifest=manifest, approved_by="demo")
                elif step == "submit":
                    manifest = services.manifest_submit(manifest=manifest)
                    submitted += 1
            if status in ("completed", "abandoned"):
                services.conversation_end(conversation=conversation, status=status)
            elif status == "expired":
                Conversation.objects.filter(pk=conversation.pk).update(status="expired", ended_at=F("last_message_at"))
            if rating:
                services.conversation_rate(conversation=conversation, score=rating[0], comment=rating[1])
            _backdate(conversation, dt.timedelta(days=days_ago, hours=rng.randint(0, 5)))
    return f"{len(SCRIPTS)} conversations for {customer.name}, {submitted} submitted as a build"


def _verify(conversation: Conversation, verdicts) -> None:
    for value, verdict in verdicts:
        extraction = conversation.extractions.filter(value=value).first()
        if extraction is not None:
            services.extraction_verify(
                extraction=extraction,
                correct=verdict is True,
                corrected_value=verdict if isinstance(verdict, str) else None,
                verified_by="demo",
            )


def _backdate(conversation: Conversation, delta: dt.timedelta) -> None:
    """Move a conversation and its rows ``delta`` into the past (the trigger recomputes last_message_at)."""
    if not delta:
        return
    ConversationMessage.objects.filter(conversation=conversation).update(created_at=F("created_at") - delta)
    ConversationIntent.objects.filter(conversation=conversation).update(created_at=F("created_at") - delta)
    RequirementExtraction.objects.filter(conversation=conversation).update(created_at=F("created_at") - delta)
    Conversation.objects.filter(pk=conversation.pk).update(
        started_at=F("started_at") - delta, ended_at=F("ended_at") - delta
    )


def _customer() -> Customer:
    """A customer with a usable license, that has started by this transaction's now() (enqueue_build compares the
    license's start with now(); a license issued earlier in this same seed transaction starts at its statement's
    time, later than that, so it is moved back a minute)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    # Not yet started counts too: such a license is moved back below.
    usable = usable_licenses(at=now, started=False).filter(suspended_at__isnull=True, revoked_at__isnull=True)
    license = (
        usable.filter(customer__name=PREFERRED_CUSTOMER).first()
        or usable.filter(tier__in=["pro", "enterprise", "asp"]).order_by("created_at").first()
    )
    if license is None:
        # No licensing demo data (the intake demo alone): issue a license of its own.
        customer, _ = Customer.objects.get_or_create(name=FALLBACK_CUSTOMER, defaults={"metadata": {"demo": DEMO_TAG}})
        license = license_issue(customer=customer, tier=License.Tier.PRO, starts_at=now - dt.timedelta(days=30)).license
    elif license.starts_at > now:
        License.objects.filter(pk=license.pk).update(starts_at=now - dt.timedelta(minutes=1))
    return license.customer
