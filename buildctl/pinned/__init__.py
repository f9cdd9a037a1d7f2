"""The product's repositories at their pinned commits: which commit each board uses
(``pins``), a throw-away checkout of one (``checkout``) and a command run in each
(``foreach``, behind ``buildctl repos``)."""
