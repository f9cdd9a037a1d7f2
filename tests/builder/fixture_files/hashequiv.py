"""Talk to a real BitBake hash-equivalence server the way BitBake's runqueue does (tests).

The build tests' stand-in bitbake cannot run tasks, but the server it talks to is BitBake's own
`bitbake-hashserv` (exported from the kit's bitbake at test time). This module lives next to
BitBake's `lib/hashserv` in the fixture poky's `bitbake/lib` and uses its client API:
`report` is what a finished sstate task reports (task hash, output hash, proposed unihash; the
server answers with the unihash already known for that output, which is how two builds share
sstate objects), `unihash` is the lookup a later build makes before running a task.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # BitBake's lib/ beside us

import hashserv  # noqa: E402 (BitBake's own client)


def report(address: str, method: str, tasks: list[tuple[str, str]]) -> dict[str, str]:
    """Report (taskhash, outhash) pairs; returns taskhash -> the unihash the server settled on."""
    settled = {}
    with hashserv.create_client(address) as client:
        for taskhash, outhash in tasks:
            reply = client.report_unihash(taskhash, method, outhash, taskhash)
            settled[taskhash] = reply["unihash"]
    return settled


def unihash(address: str, method: str, taskhashes: list[str]) -> dict[str, str | None]:
    """The unihash the server knows for each task hash (None: never reported)."""
    with hashserv.create_client(address) as client:
        return {t: client.get_unihash(method, t) for t in taskhashes}


if __name__ == "__main__":
    # Tests run it as a program so BitBake's bb/hashserv never mix with other modules of the
    # test process (bitbake-setup's bb, the parser oracle's stand-ins):
    #   hashequiv.py report ADDRESS METHOD TASKHASH:OUTHASH...  -> JSON {taskhash: unihash}
    #   hashequiv.py unihash ADDRESS METHOD TASKHASH...         -> JSON {taskhash: unihash|null}
    import json

    verb, address, method, *rest = sys.argv[1:]
    if verb == "report":
        result = report(address, method, [tuple(a.split(":", 1)) for a in rest])
    else:
        result = unihash(address, method, rest)
    print(json.dumps(result))
