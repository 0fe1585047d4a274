"""`jetti-relay console`: the operator console, a small web app served by the relay itself.

Server-rendered pages (Jinja2 templates) on Starlette under uvicorn, each with a JSON twin
under `/api/`, and every action an API call that the pages' one JavaScript file makes too.
`auth` (tokens, users, session cookies, CSRF), `pages` (the data of every page, read from the
stores with bounded queries), `actions` (what an operator may change), `app` (the routes),
`svg` (the server-side sparklines), `cli` (the command, and `console screenshots`).

Importing this package has no side effects; it needs the `console` extra (starlette, jinja2,
uvicorn, python-multipart).
"""
