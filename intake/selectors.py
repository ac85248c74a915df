"""Intake reads for the admin, the web layer and the demo."""

from django.db.models import QuerySet

from intake.models import BuildManifest, Conversation, ConversationMessage


def conversations_active(*, customer=None) -> QuerySet[Conversation]:
    """Active, not deleted conversations, most recently spoken to first."""
    conversations = Conversation.objects.filter(status=Conversation.Status.ACTIVE, deleted_at__isnull=True)
    if customer is not None:
        conversations = conversations.filter(customer=customer)
    return conversations.select_related("customer").order_by("-last_message_at")


def conversation_transcript(*, conversation: Conversation) -> QuerySet[ConversationMessage]:
    """The conversation's messages in order (served by the (conversation, created_at) index)."""
    return ConversationMessage.objects.filter(conversation_id=conversation.pk).order_by("created_at", "id")


def manifest_open(*, conversation: Conversation) -> BuildManifest | None:
    """The conversation's open (draft or approved) manifest, if any; there is at most one."""
    return BuildManifest.objects.filter(
        conversation_id=conversation.pk, status__in=[BuildManifest.Status.DRAFT, BuildManifest.Status.APPROVED]
    ).first()


def messages_unpriced_count(*, since=None) -> int:
    """How many messages carry usage that no model price covered (``unpriced``): their cost reads 0 but is not
    known, so totals under-report by them until an admin adds the price and prices them."""
    messages = ConversationMessage.objects.filter(unpriced=True)
    if since is not None:
        messages = messages.filter(created_at__gte=since)
    return messages.count()
