"""Message inserts through intake.services.message_add with the update_conversation_stats trigger.

Measures 16 writers into ONE conversation (they queue on its row lock) against 16 writers into 16 conversations,
and checks that the totals are exact afterwards. Runs against the development database (DATABASE_URL or the
embedded server), migrating it first, and deletes what it created.

    .venv/bin/python bench/intake_messages.py           # 16 writers x 200 messages
    .venv/bin/python bench/intake_messages.py --quick   # 16 writers x 20 messages
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "honua.settings.development")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402

from intake import services  # noqa: E402
from intake.models import Conversation, ConversationMessage  # noqa: E402
from licensing.models import Customer  # noqa: E402

# Exact totals are the hard target; the throughput target is a soft floor for a busy 2-core machine.
TARGET_ONE_CONVERSATION_PER_S = 300


def run(conversations, writers, per_writer):
    latencies, errors = [], []
    barrier = threading.Barrier(writers)

    def write(n):
        conversation = conversations[n % len(conversations)]
        mine = []
        try:
            barrier.wait(timeout=60)
            for i in range(per_writer):
                start = time.perf_counter()
                services.message_add(
                    conversation=conversation,
                    role="assistant",
                    content=f"writer {n} message {i}",
                    prompt_tokens=100 + i,
                    completion_tokens=20 + n,
                )
                mine.append(time.perf_counter() - start)
        except Exception as error:
            errors.append(error)
        finally:
            latencies.extend(mine)
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return elapsed, latencies, errors


def exact(conversations):
    for conversation in conversations:
        conversation.refresh_from_db()
        agg = ConversationMessage.objects.filter(conversation=conversation).aggregate(
            n=Count("id"), p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cost=Sum("cost")
        )
        if (conversation.message_count, conversation.prompt_tokens, conversation.completion_tokens) != (
            agg["n"],
            agg["p"],
            agg["c"],
        ) or conversation.total_cost != agg["cost"]:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small smoke run (20 messages per writer).")
    parser.add_argument("--writers", type=int, default=16, help="Concurrent writers (connections).")
    args = parser.parse_args()
    per_writer = 20 if args.quick else 200
    call_command("migrate", verbosity=0)  # the totals come from a trigger a stale database would lack
    customer = Customer.objects.create(name="bench: intake messages")
    try:
        one = [services.conversation_start(customer=customer, model="claude-sonnet-4")]
        many = [services.conversation_start(customer=customer, model="claude-sonnet-4") for _ in range(args.writers)]
        total = args.writers * per_writer
        print(f"{args.writers} writers x {per_writer} messages = {total} messages per case")
        all_exact = True
        for label, conversations in (("one conversation", one), (f"{len(many)} conversations", many)):
            elapsed, latencies, errors = run(conversations, args.writers, per_writer)
            ok = not errors and exact(conversations)
            all_exact &= ok
            quantiles = statistics.quantiles(latencies, n=100)
            print(
                f"{label:>18}: {total / elapsed:8.0f} messages/s, p50 {quantiles[49] * 1000:6.1f} ms, "
                f"p95 {quantiles[94] * 1000:6.1f} ms, totals exact: {'yes' if ok else 'NO'}"
                + (f" ({len(errors)} errors: {errors[0]})" if errors else "")
            )
            if label == "one conversation":
                rate = total / elapsed
                met = "met" if rate >= TARGET_ONE_CONVERSATION_PER_S else "NOT met"
                print(f"{'':>18}  target >= {TARGET_ONE_CONVERSATION_PER_S} messages/s into one conversation: {met}")
        print(f"target: totals exact after every case: {'met' if all_exact else 'NOT met'}")
    finally:
        conversations = Conversation.objects.filter(customer=customer)
        ConversationMessage.objects.filter(conversation__in=conversations).delete()
        conversations.delete()
        customer.delete()
        connections.close_all()


if __name__ == "__main__":
    main()
