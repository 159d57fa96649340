"""Front-ends: turn one modality's sample into the backbone's C' x H x W input (paper section 3.4).

Import the submodule you need; each output feeds `create_model(..., in_chans=C')` with no other change
to the backbone:
  `.audio`      log-mel filterbank, layout="paper" (1 x T x F) or "authors" (1 x F x T), per-clip or
                dataset normalisation;
  `.video`      frames laid out as one image, layout="paper" (frame grid) or "authors" (their reshape);
  `.points`     three views: `LearnedProjection` (point features scattered onto the planes + convs, the
                paper's) or `PointProjection` (fixed depth splats, the baseline);
  `.timeseries` Corrformer's embedding (token conv + time features + positions) or a linear one, then
                the node split and the 1 x H x W reshape.
"""
