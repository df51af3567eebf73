"""The REST service (FastAPI): upload an image, get a verdict; browse results; metrics.

Torch-free: the service sees the model only as an ``Inspector``.

>>> from defectscope.service import create_app, resolve_token      # doctest: +SKIP
>>> app = create_app(inspector, store, archive, token=resolve_token(None, os.environ))  # doctest: +SKIP
"""

from defectscope.service.app import create_app
from defectscope.service.auth import TOKEN_ENV, resolve_token

__all__ = ["TOKEN_ENV", "create_app", "resolve_token"]
