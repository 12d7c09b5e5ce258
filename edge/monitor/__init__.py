"""``myoedge monitor``: a live view in the browser of the running loop or of an MVC session.

It only listens: the runtime's UDP datagrams (estimates, and status with ``myoedge run --status-hz``) or
the events of an MVC session in the same process, decimated for the page (``feeds``), served with
aiohttp over a WebSocket to a static page that draws with the uPlot library shipped here (``static/``;
no CDN, so it works offline). docs/monitor.md.
"""
