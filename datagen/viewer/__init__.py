"""``datagen datasets serve``: a read-only web viewer (pages + JSON API) over a
store root, local or ``s3://``. ``create_app(root)`` builds the FastAPI app;
``serve(root, host, port)`` runs it with uvicorn."""

from __future__ import annotations


def create_app(root: str):
    """The viewer's ASGI app over ``root`` (see ``datagen.viewer.app``)."""
    from datagen.viewer.app import create_app as _create

    return _create(root)


def serve(root: str, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Serve the viewer until interrupted."""
    import uvicorn

    uvicorn.run(create_app(root), host=host, port=port, log_level=log_level)


__all__ = ["create_app", "serve"]
