"""The dashboard's HTTP server (standard library only): the page, its JSON and camera JPEGs.

GET /                          the page (dashboard/page.html: plain HTML + canvas, no CDN, works
                               offline)
GET /api/state?t=SECONDS       DashboardState.snapshot at t (newest when t is absent)
GET /api/frame/KEY?t=SECONDS   the newest JPEG of KEY (cam_high, cam_high_predicted, ...) at t
Binds 127.0.0.1 unless told otherwise: it has no authentication.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cosmos_policy_ros.dashboard.state import DashboardState

PAGE = Path(__file__).with_name('page.html')


def _time_arg(query: dict) -> float | None:
    values = query.get('t')
    if not values or values[0] == '':
        return None
    t = float(values[0])
    if t != t:
        raise ValueError('t is NaN')
    return t


def make_handler(state: DashboardState, mode: str):
    page = PAGE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):     # noqa: N802 - http.server's name
            url = urlparse(self.path)
            try:
                t = _time_arg(parse_qs(url.query))
            except ValueError:
                return self._send(400, 'text/plain', b't must be a number of seconds')
            if url.path in ('/', '/index.html'):
                return self._send(200, 'text/html; charset=utf-8', page)
            if url.path == '/api/state':
                body = json.dumps({'mode': mode, **state.snapshot(t)}).encode()
                return self._send(200, 'application/json', body)
            if url.path.startswith('/api/frame/'):
                jpeg = state.frame(url.path.rsplit('/', 1)[-1], t)
                if jpeg is None:
                    return self._send(404, 'text/plain', b'no frame yet')
                return self._send(200, 'image/jpeg', jpeg)
            return self._send(404, 'text/plain', b'not found')

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Cache-Control', 'no-store')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):     # noqa: A002 - quiet: the page polls
            pass

    return Handler


class DashboardServer:
    """The HTTP server on its own thread; `url` is where the page is."""

    def __init__(self, state: DashboardState, mode: str, host: str = '127.0.0.1',
                 port: int = 8765):
        self.httpd = ThreadingHTTPServer((host, port), make_handler(state, mode))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name='dashboard-http',
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f'http://{host}:{port}/'

    def start(self) -> 'DashboardServer':
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
