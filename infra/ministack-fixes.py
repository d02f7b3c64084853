#!/usr/bin/env python3
"""Fixes to the pinned MiniStack that the deploy proof needs, until a release carries them.

Applied by infra/install to infra/.venv-ministack after every install (idempotent). Each fix
names the bug; if the pinned code no longer contains the text a fix expects, this fails so
the fix is reviewed instead of silently skipped.

1. CloudFormation passes an SQS event source mapping's ScalingConfig through as resolved, so
   `MaximumConcurrency: !Ref SomeParameter` stays the string "5" and the SQS poller fails on
   every pass with "'>=' not supported between instances of 'int' and 'str'" (AWS coerces it
   to the schema's integer).
"""

import sys
from pathlib import Path

import ministack

PACKAGE = Path(ministack.__file__).parent
FIXES = [
    (
        "services/cloudformation/provisioners.py",
        """        if props.get(_opt) is not None:
            esm[_opt] = props[_opt]
""",
        """        if props.get(_opt) is not None:
            esm[_opt] = props[_opt]
    # busline fix 1: numbers in ScalingConfig arrive as strings when they come from a !Ref.
    if esm.get("ScalingConfig"):
        esm["ScalingConfig"] = {k: int(v) for k, v in esm["ScalingConfig"].items()}
""",
    ),
]


def main():
    for relative, old, new in FIXES:
        path = PACKAGE / relative
        text = path.read_text()
        if new in text:
            continue
        if text.count(old) != 1:
            sys.exit(f"infra/ministack-fixes.py: {path} no longer contains the code this fix expects; review the fix")
        path.write_text(text.replace(old, new))
        print(f"fixed {relative}")


if __name__ == "__main__":
    main()
