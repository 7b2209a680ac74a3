"""``python -m dmctl.logd [options]``: the daemon in the foreground, without the
command line's imports (``dmctl logd start`` execs this; ``dmctl logd run`` is the
same for people and systemd)."""

import argparse
import sys

from dmctl.logd import daemon


def main(argv=None):
    ap = argparse.ArgumentParser(prog="dmctl-logd")
    ap.add_argument("--socket", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--state-dir")
    ap.add_argument("--syslog", action="store_true", default=None)
    ap.add_argument("--no-syslog", dest="syslog", action="store_false")
    ap.add_argument("--ready-fd", type=int)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--kernel", choices=("auto", "yes", "no"), default="auto",
                    help="serve the real kernel's netlink connector (auto: as root, "
                         "when this kernel has device-mapper)")
    a = ap.parse_args(argv)
    daemon.setup_logging(a.syslog, a.verbose)
    kernel = {"auto": "auto", "yes": True, "no": False}[a.kernel]
    return daemon.run(a.socket, a.pidfile, a.state_dir, a.ready_fd, kernel)


if __name__ == "__main__":
    sys.exit(main())
