"""The one home of training and evaluation data: photographs, scenes, rain, pools and sets.

- `photos/`: photographs from installable packages (collection, licences, library and split);
- `pseudo_stereo`, `scene_sources`: clean stereo scenes with exact disparity, as a registry;
- `rain_layers`, `compose`: rain rendered on its own and composed onto scenes per sample;
- `pools`: cached scene and rain pools that training composes batches from;
- `synthetic`, `heldout`: on-the-fly samples and the fixed held-out sets;
- `folders`: readers of published dataset layouts;
- `seeds`: the one seed convention every set follows.
"""
