"""Allow `python -m stereo_derain_ros` as a synonym of `stereo-derain`."""

import sys

from stereo_derain_ros.cli import main

sys.exit(main())
