"""`npustream devices`: what the sources can record. Microphones as PortAudio lists them
(`--source mic:DEVICE`), then the sound server's monitors, what each output plays
(`--source system[:SINK]`), and its other inputs (recorded through PortAudio's `pulse` device)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list microphones and desktop audio (output monitors)",
        description="List audio inputs. Microphones (PortAudio): index, name, channels, default "
        "sample rate, and which of 16/44.1/48 kHz each accepts; `--source mic:INDEX` or `mic:NAME` "
        "picks one. Desktop audio (the sound server's monitors, one per output): `--source system` "
        "records the default output's, `system:SINK` another's.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per device, with its kind")
    parser.set_defaults(handler=_devices)


def _devices(args) -> int:
    import json
    from dataclasses import asdict

    from npustream.errors import AudioError
    from npustream.service.audio_devices import input_devices
    from npustream.stream.capture import soundserver

    microphones = input_devices()
    try:
        server_sources, server_error = soundserver.sources(), None
    except AudioError as exc:
        server_sources, server_error = [], str(exc)
    monitors = [s for s in server_sources if s.monitor_of]
    server_inputs = [s for s in server_sources if not s.monitor_of]
    if args.json:
        for device in microphones:
            print(json.dumps({"kind": "microphone", **asdict(device)}))
        for source in server_sources:
            print(json.dumps({"kind": "monitor" if source.monitor_of else "server input", **asdict(source)}))
        return 0
    _print_microphones(microphones)
    print()
    _print_server_sources(monitors, server_inputs, server_error)
    return 0 if microphones or monitors else 1


def _print_microphones(devices) -> None:
    from npustream.service.audio_devices import describe_rates

    print("microphones (PortAudio): --source mic, mic:INDEX or mic:NAME")
    if not devices:
        print("  none (is a sound server running? see `npustream doctor`)")
        return
    width = max(len(d.name) for d in devices)
    api = max(len(d.hostapi) for d in devices)
    print(f"  {'idx':>3}  {'name':<{width}}  {'api':<{api}}  {'ch':>3}  {'default':>9}  rates")
    for d in devices:
        mark = "*" if d.is_default else " "
        print(
            f"{mark} {d.index:>3}  {d.name:<{width}}  {d.hostapi:<{api}}  {d.channels:>3}  "
            f"{d.default_rate:>6g} Hz  {describe_rates(d)}"
        )
    print("  the input marked * is the default, what --source mic records")


def _print_server_sources(monitors, server_inputs, error: str | None) -> None:
    print(
        "desktop audio (the sound server's monitors: what each output plays): --source system or system:SINK"
    )
    if error:
        print(f"  none: {error}")
        return
    if not monitors:
        print("  none: the sound server has no outputs")
    else:
        width = max(len("output (SINK)"), *(len(m.monitor_of) for m in monitors))
        name = max(len(m.name) for m in monitors)
        print(f"  {'output (SINK)':<{width}}  {'monitor':<{name}}  {'rate':>9}  description")
        for m in monitors:
            mark = "*" if m.is_default else " "
            print(f"{mark} {m.monitor_of:<{width}}  {m.name:<{name}}  {m.rate:>6} Hz  {m.description}")
        print("  the output marked * is the default, what --source system records")
    if server_inputs:
        print()
        print("sound server inputs (PortAudio records the default one as its `pulse` and `default` devices)")
        for s in server_inputs:
            mark = "*" if s.is_default else " "
            print(f"{mark} {s.name}  {s.rate} Hz  {s.description}")
