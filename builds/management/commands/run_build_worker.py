import signal

from django.core.management.base import BaseCommand, CommandError

from builds.queue.executors import CommandExecutor, SimulatedExecutor
from builds.queue.worker import Worker


class Command(BaseCommand):
    help = (
        "Run a build worker: claim builds from the queue (woken by LISTEN build_queue), heartbeat while they run, "
        "report progress and artifacts, and complete them. SIGTERM/SIGINT stops it gracefully: no new claims, "
        "running builds get --grace seconds, then go back to the queue. A second signal skips the grace period."
    )

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=int, default=1, help="How many builds to run at once (slots).")
        parser.add_argument(
            "--executor",
            choices=["simulated", "command"],
            default="simulated",
            help="simulated: pretend stages, an image digest and an SBOM; command: run --command-template.",
        )
        parser.add_argument(
            "--command-template",
            default="",
            help="For --executor command: the builder to run per build (README, 'Build workers'), e.g. "
            "'docker buildx build --file {dockerfile} --platform {platforms} --tag {image} --push "
            "--metadata-file {metadata_file} --progress plain {context}'. Placeholders: {dockerfile} {context} "
            "{metadata_file} {platforms} {image} {sbom_file} {build_id} {manifest_path} {manifest_hash} {workdir}. "
            "The image digest is read from containerimage.digest in the metadata file.",
        )
        parser.add_argument(
            "--command-timeout",
            type=float,
            default=3600.0,
            help="For --executor command: seconds a build command may run before it is stopped (SIGTERM, then "
            "SIGKILL after --command-grace).",
        )
        parser.add_argument(
            "--command-grace", type=float, default=10.0, help="Seconds between SIGTERM and SIGKILL of a command."
        )
        parser.add_argument(
            "--stage-seconds", type=float, default=0.5, help="For --executor simulated: seconds per stage."
        )
        parser.add_argument(
            "--noop", action="store_true", help="For --executor simulated: no stages and no SBOM (benchmarks)."
        )
        parser.add_argument("--worker-id", default=None, help="This worker's id (default: host name and a random tag).")
        parser.add_argument("--grace", type=float, default=30.0, help="Seconds running builds get after SIGTERM.")
        parser.add_argument(
            "--poll-interval", type=float, default=5.0, help="Seconds an idle slot waits without a notification."
        )
        parser.add_argument(
            "--heartbeat-interval", type=float, default=15.0, help="Seconds between heartbeats of a quiet build."
        )
        parser.add_argument(
            "--reap-interval",
            type=float,
            default=15.0,
            help="Seconds between runs of handle_build_timeouts (0: never; leave it to the maintenance task).",
        )
        parser.add_argument(
            "--no-synchronous-commit",
            action="store_true",
            help="Do not wait for the WAL flush on claims and completions (faster on slow disks). A database crash "
            "may then forget the last moment of them: those builds are rescued and built again (at-least-once).",
        )
        parser.add_argument("--max-builds", type=int, default=None, help="Exit after claiming this many builds.")
        parser.add_argument(
            "--exit-when-idle",
            action="store_true",
            help="Exit once nothing is claimable and this worker runs nothing (drain mode).",
        )

    def handle(self, *args, **options):
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1", returncode=2)
        if options["executor"] == "command":
            if not options["command_template"].strip():
                raise CommandError("--executor command needs --command-template", returncode=2)
            executor = CommandExecutor(
                options["command_template"],
                timeout=options["command_timeout"],
                terminate_grace=options["command_grace"],
            )
        else:
            executor = SimulatedExecutor(stage_seconds=options["stage_seconds"], noop=options["noop"])
        verbose = options["verbosity"] >= 1
        worker = Worker(
            executor=executor,
            concurrency=options["concurrency"],
            worker_id=options["worker_id"],
            poll_interval=options["poll_interval"],
            heartbeat_interval=options["heartbeat_interval"],
            reap_interval=options["reap_interval"],
            grace=options["grace"],
            max_builds=options["max_builds"],
            exit_when_idle=options["exit_when_idle"],
            synchronous_commit=not options["no_synchronous_commit"],
            echo=(lambda line: self.stdout.write(line)) if verbose else None,
        )
        previous = worker.install_signal_handlers()
        try:
            counts = worker.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if verbose:
            summary = ", ".join(f"{key} {value}" for key, value in counts.items())
            self.stdout.write(self.style.SUCCESS(f"worker {worker.worker_id} stopped: {summary}"))
