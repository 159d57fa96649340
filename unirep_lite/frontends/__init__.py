"""Front-ends: turn one modality's sample into the backbone's C' x H x W input (paper section 3.4).

Import the submodule you need (`unirep_lite.frontends.audio`, `.video`, `.points`, `.timeseries`);
each output feeds `create_model(..., in_chans=C')` with no other change to the backbone.
"""
