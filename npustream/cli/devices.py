"""`npustream devices`: the audio input devices `--source mic:DEVICE` can name."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list audio input devices",
        description="List audio input devices: index, name, channels, default sample rate, and "
        "which of 16/44.1/48 kHz each accepts. `--source mic:INDEX` or `mic:NAME` picks one.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per device")
    parser.set_defaults(handler=_devices)


def _devices(args) -> int:
    import json
    from dataclasses import asdict

    from npustream.service.audio_devices import describe_rates, input_devices

    devices = input_devices()
    if args.json:
        for device in devices:
            print(json.dumps(asdict(device)))
        return 0
    if not devices:
        print("no audio input devices (is a sound server running? see `npustream doctor`)")
        return 1
    width = max(len(d.name) for d in devices)
    api = max(len(d.hostapi) for d in devices)
    print(f"  {'idx':>3}  {'name':<{width}}  {'api':<{api}}  {'ch':>3}  {'default':>9}  rates")
    for d in devices:
        mark = "*" if d.is_default else " "
        print(
            f"{mark} {d.index:>3}  {d.name:<{width}}  {d.hostapi:<{api}}  {d.channels:>3}  "
            f"{d.default_rate:>6g} Hz  {describe_rates(d)}"
        )
    print("* default input; use --source mic:INDEX or mic:NAME for another")
    return 0
