"""How results are shown: verdict lines, terminal styling, the grouped text that reads at scale.
May import models, errors and text only.

``terminal``: colour (on a TTY, honouring ``NO_COLOR``) and the width to fit.
``grouped``: one block per project and release, one fix per release, and the summary counts
(verified / unsigned-allowed / warned / refused / could not check) every format shares.
"""
