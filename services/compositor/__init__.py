"""The compositor: CPU pixel work for product photos, served over gRPC.

Where things are:
- server.py: gRPC wiring (build_server, main); specs.py: request validation.
- compose.py: one product photo, start to finish; cutout.py: cut-outs.
- presets.py: the preset table; backgrounds.py: solid/gradient/sweep drawing;
  scenes.py: procedural marble, wood, concrete, paper, outdoor; colors.py;
  prompts.py: background prompt -> preset (or "needs a generative model").
- layout.py: canvas, placement, resampling; shadows.py: cast/contact shadows;
  shadow_estimate.py: preserve_shadow; blend.py: over + blend modes;
  detail.py: detail transfer; decontaminate.py: edge colour cleanup;
  encode.py: JPEG/PNG/WebP; contact_sheet.py: preset x shadow overview.

Arrays are uint8 HWC, RGB or RGBA, unless a name or docstring says otherwise.
"""
