"""`palaestrio serve`: the executor as a service, with an HTTP API and a web page.

Modules, one job each: `app` (the Starlette app and `serve`, the HTTP server task that
runs in the executor's nursery), `api` (the JSON endpoints), `events` (executor updates
fanned out to Server-Sent Events streams), `rows` (store rows merged with the executor's
live view), `submissions` (validating a submitted file), `results` (series, export
zip), `brains` (brain dumps), `auth` (bearer token, request size limit, bind checks).
The page is `static/` (package data, no build step, no CDN).
"""

from __future__ import annotations
