"""`npustream service install|uninstall|show`: the systemd unit for this installation."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "service",
        help="install or remove the systemd unit",
        description="Install or remove npustream as a systemd service. The user service (default) "
        "runs in your session, next to PipeWire/PulseAudio; the system service is for dedicated "
        "machines and runs as its own user with the NPU and ALSA devices only.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def scope_flags(p: argparse.ArgumentParser) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument(
            "--user",
            dest="scope",
            action="store_const",
            const="user",
            help="this user's service manager (default)",
        )
        group.add_argument(
            "--system",
            dest="scope",
            action="store_const",
            const="system",
            help="the system service manager (needs root)",
        )
        p.set_defaults(scope="user")

    install = actions.add_parser("install", help="write the unit and a default config")
    scope_flags(install)
    install.add_argument("--enable", action="store_true", help="also enable and start it now")
    install.add_argument(
        "--python", metavar="PATH", help="interpreter for ExecStart (default: the one running this command)"
    )
    install.add_argument(
        "--root", metavar="DIR", help="stage a --system install under DIR (packaging); runs nothing"
    )
    install.add_argument(
        "--web",
        action="store_true",
        help="also install npustream-web.service (`npustream web`, started after the daemon)",
    )
    install.set_defaults(handler=_install)

    uninstall = actions.add_parser("uninstall", help="stop, disable and remove the unit")
    scope_flags(uninstall)
    uninstall.add_argument("--purge", action="store_true", help="also remove the config file")
    uninstall.add_argument("--root", metavar="DIR", help="remove a staged --system install")
    uninstall.set_defaults(handler=_uninstall)

    show = actions.add_parser("show", help="print the unit that install would write")
    scope_flags(show)
    show.add_argument("--python", metavar="PATH", help="interpreter for ExecStart")
    show.add_argument("--web", action="store_true", help="the web page's unit instead of the daemon's")
    show.set_defaults(handler=_show)


def _install(args) -> int:
    from npustream.service import install

    report = install.install(args.scope, enable=args.enable, python=args.python, root=args.root, web=args.web)
    print(f"npustream {args.scope} service:\n{report}")
    return 0


def _uninstall(args) -> int:
    from npustream.service import install

    report = install.uninstall(args.scope, purge=args.purge, root=args.root)
    print(f"npustream {args.scope} service removed:\n{report}")
    return 0


def _show(args) -> int:
    import sys

    from npustream.service import install

    sys.stdout.write(install.render_unit(args.scope, args.python or sys.executable, web=args.web))
    return 0
