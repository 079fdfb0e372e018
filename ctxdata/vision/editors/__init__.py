"""Editor backends (see ctxdata.vision.edit.EDITORS)."""
