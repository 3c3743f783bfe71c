import os

from palaestrio import proctree
from palaestrio.governor import lifeline

# First, before the imports that take most of a governor's start: an executor that dies
# meanwhile (SIGTERM before its handlers are up, SIGKILL) must not leave us behind.
lifeline.hold(os.environ.get(proctree.LIFELINE_VARIABLE))

from palaestrio.governor.process import main  # noqa: E402

main()
