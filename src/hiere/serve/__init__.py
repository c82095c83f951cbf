"""``hiere serve``: a trained model behind an HTTP API (FastAPI) and a web page that shows its facts.

* :mod:`hiere.serve.settings` - the limits and batching knobs, and the ``hiere serve`` arguments
  (no FastAPI import: the CLI works without the ``serve`` extra);
* :mod:`hiere.serve.schemas` - the pydantic models of every request and response;
* :mod:`hiere.serve.batching` - the micro-batcher that lets concurrent requests share forward passes;
* :mod:`hiere.serve.service` - requests -> :class:`hiere.api.Predictor` calls (the one prediction API);
* :mod:`hiere.serve.app` - the FastAPI application (``create_app``) and its error handling;
* ``static/`` - the page at ``/`` (plain HTML, CSS and JavaScript; no CDN).
"""
