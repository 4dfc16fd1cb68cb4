"""The policy server: openpi websocket + msgpack and the reference /act HTTP JSON, one port.

One asyncio loop owns the sockets. Each connection starts with an HTTP/1.1 request head:
    GET /healthz                      -> 200 "OK" (no token needed; says nothing else)
    GET <any path> + Upgrade: websocket -> openpi protocol: the server sends msgpack(metadata),
                                         then answers each msgpack(observation) with
                                         msgpack(reply), or a text frame "<kind> error: ..."
                                         (the connection stays open)
    POST /act                         -> the reference deploy script's JSON endpoint (json_numpy
                                         arrays, or {"encoded": "<JSON string>"}; HTTP 400 with
                                         {"error", "field"} when the request is invalid)
WebSocket framing is websockets' sans-I/O protocol (no compression, masked client frames, size
checked before a frame is read); the HTTP side is a small keep-alive HTTP/1.1 reader that
needs Content-Length.

Safe by default: it binds 127.0.0.1; any other address needs a token (Authorization:
"Api-Key <token>", as openpi-client sends it, or "Bearer <token>"), compared in constant time.
Requests carrying an Origin header (browsers) are refused. Heads, bodies and messages are
size-limited, slow heads time out, connections and queued inferences are bounded. Decoding
and validation run in a small thread pool, inference in one worker thread (one model).
"""
import asyncio
import hmac
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus

from cosmos_policy_ros.serving import codec, schema
from cosmos_policy_ros.serving.schema import RequestError

LOG = logging.getLogger('cosmos_policy_ros.serving')
LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')
MIN_TOKEN_CHARS = 16
MAX_HEAD_BYTES = 16 * 1024
INLINE_DECODE_BYTES = 2 * 2**20
# Stream buffer and read size: large reads take a 450 kB observation in a few wake-ups (the
# buffer limit also bounds a request head: past it, the head is refused).
READ_BYTES = 2**20


class ConfigError(ValueError):
    """The server configuration is unsafe or invalid."""


class Busy(Exception):
    """Too many inferences queued."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond the default loopback address without a token.

    No token is needed only on 127.0.0.1 / localhost / ::1, the defaults. Every other address
    (0.0.0.0, a LAN address, even another 127.x address) needs one: the rule is about the
    address asked for, so it never depends on how the network is routed."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f'the token has {len(token)} characters; use at least '
                          f'{MIN_TOKEN_CHARS} (e.g. python -c "import secrets; '
                          'print(secrets.token_urlsafe(32))")')
    if host not in LOCAL_HOSTS and token is None:
        raise ConfigError(f'host {host!r}: serving beyond {LOCAL_HOSTS[0]} needs a token: '
                          'put one in a file and pass --token-file FILE (or set '
                          'COSMOS_POLICY_TOKEN); clients send "Authorization: Api-Key <token>"')


@dataclass(frozen=True)
class ServerConfig:
    host: str = '127.0.0.1'
    port: int = 8000                      # openpi's default port; 0 picks a free one
    token: str | None = None
    max_message_bytes: int = 16 * 2**20   # one websocket message or /act body
    max_connections: int = 16
    max_pending: int = 8                  # inferences queued or running, all connections
    head_timeout: float = 10.0            # to receive a request head [s]
    body_timeout: float = 60.0            # to receive an /act body [s]
    idle_timeout: float = 120.0           # HTTP keep-alive idle [s]

    def __post_init__(self):
        for name in ('max_message_bytes', 'max_connections', 'max_pending'):
            if getattr(self, name) < 1:
                raise ConfigError(f'ServerConfig.{name} must be >= 1')
        if not 0 <= self.port <= 65535:
            raise ConfigError(f'ServerConfig.port {self.port} is not a TCP port')


@dataclass
class HttpRequest:
    method: str
    target: str
    version: str
    headers: dict                         # lower-case name -> value

    @property
    def path(self) -> str:
        return self.target.split('?', 1)[0]

    def keep_alive(self) -> bool:
        connection = self.headers.get('connection', '').lower()
        if self.version == 'HTTP/1.0':
            return 'keep-alive' in connection
        return 'close' not in connection


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str, field: str = ''):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


_SINGLE_HEADERS = ('content-length', 'authorization', 'transfer-encoding', 'host', 'upgrade')


def parse_head(head: bytes) -> HttpRequest:
    """Request line + headers (strict: no folding, no duplicate framing/auth headers)."""
    try:
        text = head.decode('latin-1')
    except UnicodeDecodeError:
        raise HttpError(HTTPStatus.BAD_REQUEST, 'undecodable request head') from None
    lines = text.split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or parts[2] not in ('HTTP/1.1', 'HTTP/1.0') or not parts[0].isalpha() \
            or not parts[1].startswith('/'):
        raise HttpError(HTTPStatus.BAD_REQUEST, f'bad request line {lines[0][:80]!r}')
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(':')
        if not sep or not name or name != name.strip() or ' ' in name or line[0] in ' \t':
            raise HttpError(HTTPStatus.BAD_REQUEST, f'bad header line {line[:80]!r}')
        name = name.lower()
        if name in headers and name in _SINGLE_HEADERS:
            raise HttpError(HTTPStatus.BAD_REQUEST, f'duplicate {name} header')
        headers[name] = value.strip() if name not in headers else f'{headers[name]}, {value}'
        if len(headers) > 100:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, 'too many headers')
    return HttpRequest(parts[0], parts[1], parts[2], headers)


def _response(status: HTTPStatus, body: bytes, content_type: str, keep_alive: bool,
              extra: dict | None = None) -> bytes:
    lines = [f'HTTP/1.1 {status.value} {status.phrase}', f'Content-Type: {content_type}',
             f'Content-Length: {len(body)}',
             f'Connection: {"keep-alive" if keep_alive else "close"}',
             'Server: cosmos-policy-ros']
    lines += [f'{k}: {v}' for k, v in (extra or {}).items()]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + body


def _json_error(status: HTTPStatus, message: str, field: str, keep_alive: bool,
                extra: dict | None = None) -> bytes:
    body = codec.dumps_json({'error': message, 'field': field}).encode()
    return _response(status, body, 'application/json', keep_alive, extra)


class PolicyServer:
    """Serve a PolicyService; `start()` runs it in a background thread, `stop()` ends it.
    `stats` counts connections, replies and rejections by kind."""

    def __init__(self, service, config: ServerConfig = ServerConfig()):
        check_bind(config.host, config.token)
        self.service, self.config = service, config
        self.stats = {'connections': 0, 'refused_connections': 0, 'ws_replies': 0,
                      'act_replies': 0, 'request_errors': 0, 'auth_failures': 0,
                      'too_large': 0, 'busy': 0, 'inference_errors': 0, 'http_errors': 0}
        self.port = None
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()
        self._stopped = None
        self._start_error = None
        self._active = 0
        self._pending = 0
        self._tasks = set()
        self._decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix='decode')
        self._infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='inference')

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f'[{self.config.host}]' if ':' in self.config.host else self.config.host
        return f'ws://{host}:{self.port}'

    @property
    def http_url(self) -> str:
        return 'http' + self.url[2:]

    def start(self, timeout: float = 30.0) -> 'PolicyServer':
        self._thread = threading.Thread(target=self._run_loop, name='policy-server',
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f'policy server did not start within {timeout} s')
        if self._start_error is not None:
            raise self._start_error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self._infer_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> 'PolicyServer':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._main())
        except OSError as exc:
            self._start_error = OSError(exc.errno, f'cannot listen on {self.config.host}:'
                                        f'{self.config.port}: {exc.strerror}')
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port,
            limit=READ_BYTES, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._stopped.wait()
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5.0)

    # -- connections -------------------------------------------------------------------------
    def _accept(self, reader, writer) -> None:
        # Our own task (not a coroutine handed to asyncio.start_server), so stop() can cancel
        # it without asyncio logging the cancellation as an error.
        task = self._loop.create_task(self._connection(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader, writer) -> None:
        self.stats['connections'] += 1
        self._active += 1
        try:
            if self._active > self.config.max_connections:
                self.stats['refused_connections'] += 1
                writer.write(_json_error(HTTPStatus.SERVICE_UNAVAILABLE, 'too many connections',
                                         '', False))
                await writer.drain()
                return
            await self._http(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad connection never stops the server
            LOG.error('connection failed:\n%s', traceback.format_exc())
        finally:
            self._active -= 1
            writer.close()

    async def _read_head(self, reader, timeout: float) -> bytes | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b'\r\n\r\n'), timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise HttpError(HTTPStatus.BAD_REQUEST, 'incomplete request head') from None
            return None
        except asyncio.LimitOverrunError:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                            f'request head over {MAX_HEAD_BYTES} bytes') from None
        if len(head) > MAX_HEAD_BYTES:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                            f'request head over {MAX_HEAD_BYTES} bytes')
        return head

    async def _http(self, reader, writer) -> None:
        timeout = self.config.head_timeout
        while True:
            try:
                head = await self._read_head(reader, timeout)
                if head is None:
                    return
                request = parse_head(head)
                if 'origin' in request.headers:
                    raise HttpError(HTTPStatus.FORBIDDEN, 'requests from browsers (with an '
                                    'Origin header) are refused')
                if 'websocket' in request.headers.get('upgrade', '').lower():
                    await self._websocket(reader, writer, head, request)
                    return
                keep_alive = await self._route(reader, writer, request)
            except HttpError as exc:
                self.stats['http_errors'] += 1
                self.stats['too_large'] += exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                self.stats['auth_failures'] += exc.status == HTTPStatus.UNAUTHORIZED
                extra = ({'WWW-Authenticate': 'Api-Key'}
                         if exc.status == HTTPStatus.UNAUTHORIZED else None)
                writer.write(_json_error(exc.status, exc.message, exc.field, False, extra))
                await writer.drain()
                await self._linger(reader, writer)
                return
            if not keep_alive:
                return
            timeout = self.config.idle_timeout

    async def _linger(self, reader, writer) -> None:
        """Close after an error without resetting the connection: a socket closed with unread
        input sends RST, and the client may lose the error reply. Read and drop what the client
        still sends (bounded in bytes and time) after half-closing."""
        if writer.can_write_eof():
            writer.write_eof()
        budget = self.config.max_message_bytes + 2**16
        deadline = time.monotonic() + 2.0
        while budget > 0 and time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(2**16), deadline - time.monotonic())
            if not data:
                return
            budget -= len(data)

    async def _route(self, reader, writer, request: HttpRequest) -> bool:
        """Answer one plain HTTP request; returns whether to keep the connection."""
        keep_alive = request.keep_alive()
        if request.path == '/healthz':
            if request.method not in ('GET', 'HEAD'):
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, '/healthz: use GET')
            body = b'OK\n' if request.method == 'GET' else b''
            writer.write(_response(HTTPStatus.OK, body, 'text/plain', keep_alive))
        elif request.path == '/act':
            if request.method != 'POST':
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, '/act: use POST with a JSON body')
            writer.write(await self._act(reader, writer, request, keep_alive))
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, f'no endpoint {request.path[:80]!r}; '
                            'endpoints: POST /act, GET /healthz, websocket (openpi) on any '
                            'other path')
        await writer.drain()
        return keep_alive

    def _authorized(self, headers: dict) -> bool:
        if self.config.token is None:
            return True
        scheme, _, value = headers.get('authorization', '').partition(' ')
        if scheme.lower() not in ('api-key', 'bearer'):
            return False
        return hmac.compare_digest(value.strip().encode(), self.config.token.encode())

    async def _decode(self, parse, payload: bytes):
        """Parse + validate: inline when small (a thread hop costs more than decoding 3
        camera frames), in the decode pool when large (nested-list JSON can take long)."""
        if len(payload) <= INLINE_DECODE_BYTES:
            return parse(payload)
        return await self._loop.run_in_executor(self._decode_pool, parse, payload)

    async def _infer(self, query, **kwargs):
        if self._pending >= self.config.max_pending:
            self.stats['busy'] += 1
            raise Busy(f'{self._pending} inferences already queued; retry later')
        self._pending += 1
        try:
            return await self._loop.run_in_executor(
                self._infer_pool, lambda: self.service.infer(query, **kwargs))
        finally:
            self._pending -= 1

    # -- /act --------------------------------------------------------------------------------
    async def _act(self, reader, writer, request: HttpRequest, keep_alive: bool) -> bytes:
        if not self._authorized(request.headers):
            raise HttpError(HTTPStatus.UNAUTHORIZED, 'missing or wrong token: send '
                            '"Authorization: Api-Key <token>"')
        if 'transfer-encoding' in request.headers:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, 'send the body with Content-Length '
                            '(no Transfer-Encoding)')
        length = request.headers.get('content-length', '')
        if not length.isdigit():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, 'a Content-Length header is required')
        if int(length) > self.config.max_message_bytes:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f'body of {int(length)} bytes exceeds the limit of '
                            f'{self.config.max_message_bytes}')
        if request.headers.get('expect', '').lower() == '100-continue':
            writer.write(b'HTTP/1.1 100 Continue\r\n\r\n')
        body = await asyncio.wait_for(reader.readexactly(int(length)), self.config.body_timeout)
        start = time.perf_counter()
        try:
            query, encoded = await self._decode(self._parse_act, body)
            decoded = time.perf_counter()
            result = await self._infer(query, decode_future=self.service.decode_future)
            inferred = time.perf_counter()
            reply = schema.act_reply(result, query, {
                'decode_ms': decoded - start, 'infer_ms': result.infer_s,
                'queue_ms': inferred - decoded - result.infer_s})
            text = codec.dumps_json(reply)
            if encoded:
                text = codec.dumps_json(text)
        except RequestError as exc:
            self.stats['request_errors'] += 1
            return _json_error(HTTPStatus.BAD_REQUEST, str(exc), exc.field, keep_alive)
        except Busy as exc:
            return _json_error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), '', keep_alive)
        except Exception as exc:  # noqa: BLE001 - reported to the client and logged
            return self._inference_error(exc, keep_alive)
        self.stats['act_replies'] += 1
        return _response(HTTPStatus.OK, text.encode(), 'application/json', keep_alive)

    def _parse_act(self, body: bytes):
        try:
            payload = codec.loads_json(body, self.config.max_message_bytes)
            encoded = isinstance(payload, dict) and 'encoded' in payload
            if encoded:
                if len(payload) != 1 or not isinstance(payload['encoded'], str):
                    raise RequestError('encoded', 'must be the only key, holding the JSON '
                                       'request as a string')
                payload = codec.loads_json(payload['encoded'], self.config.max_message_bytes)
        except codec.DecodeError as exc:
            raise RequestError('', str(exc)) from None
        return schema.parse_act(payload, self.service.limits), encoded

    def _inference_error(self, exc: Exception, keep_alive: bool) -> bytes:
        if isinstance(exc, ValueError):           # the model's own input checks
            self.stats['request_errors'] += 1
            return _json_error(HTTPStatus.BAD_REQUEST, str(exc), '', keep_alive)
        self.stats['inference_errors'] += 1
        LOG.error('inference failed:\n%s', traceback.format_exc())
        return _json_error(HTTPStatus.INTERNAL_SERVER_ERROR,
                           f'inference failed: {type(exc).__name__}: {exc}', '', keep_alive)

    # -- openpi websocket --------------------------------------------------------------------
    async def _websocket(self, reader, writer, head: bytes, request: HttpRequest) -> None:
        from websockets.exceptions import PayloadTooBig
        from websockets.frames import BINARY, CONT, TEXT, CloseCode
        from websockets.protocol import CLOSED, OPEN
        from websockets.server import ServerProtocol
        protocol = ServerProtocol(max_size=self.config.max_message_bytes, logger=LOG)
        protocol.receive_data(head)
        events = protocol.events_received()
        if not events:
            raise HttpError(HTTPStatus.BAD_REQUEST, 'invalid websocket handshake')
        if self._authorized(request.headers):
            response = protocol.accept(events[0])
        else:
            self.stats['auth_failures'] += 1
            response = protocol.reject(HTTPStatus.UNAUTHORIZED, 'missing or wrong token: send '
                                       '"Authorization: Api-Key <token>"\n')
        protocol.send_response(response)
        await self._flush(protocol, writer)
        if response.status_code != 101:
            return
        protocol.send_binary(codec.pack_msgpack(self.service.metadata()))
        await self._flush(protocol, writer)
        queue = asyncio.Queue(maxsize=8)
        worker = asyncio.create_task(self._ws_worker(protocol, writer, queue))
        try:
            parts, opcode, too_large = [], None, False
            while protocol.state is not CLOSED and not worker.done():
                # Open: clients may idle between chunks; closing: the peer has 10 s to finish.
                timeout = None if protocol.state is OPEN else 10.0
                data = await asyncio.wait_for(reader.read(READ_BYTES), timeout)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                for frame in protocol.events_received():
                    if frame.opcode in (TEXT, BINARY):
                        parts, opcode = [frame.data], frame.opcode
                    elif frame.opcode is CONT:
                        parts.append(frame.data)
                    else:
                        continue                  # ping/pong/close: answered by the protocol
                    if frame.fin:
                        try:
                            queue.put_nowait((opcode, b''.join(parts)))
                        except asyncio.QueueFull:
                            protocol.fail(CloseCode.POLICY_VIOLATION,
                                          'too many requests in flight; wait for each reply')
                        parts = []
                if isinstance(protocol.parser_exc, PayloadTooBig) and not too_large:
                    too_large = True          # the protocol closes with 1009
                    self.stats['too_large'] += 1
                await self._flush(protocol, writer)
                if not data:
                    break
        finally:
            worker.cancel()

    async def _flush(self, protocol, writer) -> None:
        for data in protocol.data_to_send():
            if data:
                writer.write(data)
            elif writer.can_write_eof():
                writer.write_eof()
        await writer.drain()

    async def _ws_worker(self, protocol, writer, queue) -> None:
        from websockets.frames import TEXT
        from websockets.protocol import OPEN
        previous_total = 0.0
        while True:
            opcode, message = await queue.get()
            start = time.perf_counter()
            try:
                if opcode is TEXT:
                    raise RequestError('', 'send msgpack observations in binary frames')
                query = await self._decode(self._parse_openpi, message)
                decoded = time.perf_counter()
                result = await self._infer(query)
                inferred = time.perf_counter()
                reply = codec.pack_msgpack(schema.openpi_reply(result, {
                    'infer_ms': result.infer_s, 'decode_ms': decoded - start,
                    'queue_ms': inferred - decoded - result.infer_s,
                    'prev_total_ms': previous_total}))
                self.stats['ws_replies'] += 1
                if protocol.state is OPEN:
                    protocol.send_binary(reply)
            except (RequestError, Busy) as exc:
                self.stats['request_errors'] += isinstance(exc, RequestError)
                kind = 'request' if isinstance(exc, RequestError) else 'busy'
                if protocol.state is OPEN:
                    protocol.send_text(f'{kind} error: {exc}'.encode())
            except Exception as exc:  # noqa: BLE001 - reported to the client and logged
                if isinstance(exc, ValueError):
                    self.stats['request_errors'] += 1
                else:
                    self.stats['inference_errors'] += 1
                    LOG.error('inference failed:\n%s', traceback.format_exc())
                if protocol.state is OPEN:
                    protocol.send_text(f'inference error: {type(exc).__name__}: {exc}'.encode())
            try:
                await self._flush(protocol, writer)
            except ConnectionError:
                return
            previous_total = time.perf_counter() - start

    def _parse_openpi(self, message: bytes):
        try:
            payload = codec.unpack_msgpack(message, self.config.max_message_bytes)
        except codec.DecodeError as exc:
            raise RequestError('', str(exc)) from None
        return schema.parse_openpi(payload, self.service.limits)
