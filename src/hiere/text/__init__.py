"""Raw text for ``hiere extract``: spaCy pipeline (:mod:`.pipeline`), mention clusters (:mod:`.clusters`)."""
