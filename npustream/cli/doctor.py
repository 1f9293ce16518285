"""`npustream doctor`: one screen saying what `npustream run` would do here, and why."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check audio, NPU, model and daemon; say what run would do",
        description="Check the audio input, the NPU (device, driver, XRT, pyxrt, xclbins), the "
        "model, the sockets and a running daemon, and say which engine `npustream run` would "
        "use and why. Exits non-zero when the daemon cannot run as configured.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="config to check (default: the user service's, when installed)"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=_doctor)


def _doctor(args) -> int:
    import json
    from dataclasses import asdict

    from npustream.service.doctor import diagnose, render

    diag = diagnose(args.config)
    if args.json:
        print(
            json.dumps(
                {
                    "can_run": diag.can_run,
                    "engine": diag.engine,
                    "engine_reason": diag.engine_reason,
                    "config": str(diag.config_path) if diag.config_path else None,
                    "checks": [asdict(c) for c in diag.checks],
                },
                indent=2,
            )
        )
    else:
        print(render(diag))
    return 0 if diag.can_run else 1
