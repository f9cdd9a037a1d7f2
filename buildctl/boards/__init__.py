"""Board contributions: `new-board` scaffolding and meta-mender-community's rules.

answers.py   what the user said (answers file, flags), with file:line origins
probe.py     a MACHINE's configuration evaluated from git objects over the layer stack
             (inline Python through layers/inline.py, shared with pre-flight)
propose.py   Mender settings proposed from the probe, each with its reason
resolve.py   answers + proposals + prompts -> BoardSpec (model.py) and the transcript
community.py the community repository's layout and rules, as data
base.py      the community checkout a contribution is made against
scaffold.py  every output rendered from templates/ (pure functions of the BoardSpec)
contribution.py  the patch, and --apply as a signed-off commit
check.py     `board check`: the rules over board files and checkouts
"""
