"""``python -m fcnprobe`` is the same as ``python -m fcnprobe.run``."""
from fcnprobe.run import main

raise SystemExit(main())
