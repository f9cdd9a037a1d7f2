"""CI pipelines for a product: one plan (jobs, stages, secrets, caches), one template per CI system.

`plan.py` turns a product manifest into a provider-neutral ``Pipeline``; `render.py` writes it
with the provider's Jinja2 template (``templates/<provider>.j2``). The CI system is the
distributed engine: buildctl only says which jobs exist and what each one waits for.
"""
