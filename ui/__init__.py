"""The status page of the loop: ``python run.py ui`` (see ui/app.py and docs/ui.md)."""
