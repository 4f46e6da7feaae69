"""A latency-injecting TCP proxy for imapfs's benchmark (stdlib only).

The machine running the benchmark has no netem, so this proxy stands
between the clients and the IMAP server on 127.0.0.1 and delays every
chunk it forwards by a one-way delay (RTT / 2) in each direction.

    p = LatencyProxy(("127.0.0.1", upstream_port), rtt_ms=20)
    p.start()                       # listens on p.port (127.0.0.1)
    p.reset()                       # zero the counters
    ...                             # clients connect to p.port
    c = p.counters()                # dict: see Counters below
    p.set_rtt(60)                   # applies to chunks read from now on
    p.set_rate(2e6)                 # bytes/s each way, all connections
    p.stop()

Each direction of each connection has a reader thread and a writer
thread joined by a bounded queue: the reader stamps a chunk with the time
it may leave (now + RTT/2) and queues it; the writer sleeps until that
time and sends it.  Chunks keep their order and many may be in flight at
once, so the delay does not cap the bandwidth; the queue bound (like a
TCP window) limits the bytes in flight per direction.

With a rate, chunks also leave no faster than that many bytes a second
in each direction, all connections together, as through a slow link
that queues each connection's packets apart (fair queueing): 16 KB
slices take turns, so a connection waits for a slice of each other
busy one, never for a whole backlog of theirs.

Counters: bytes each way as read ("bytes_*") and as passed on after
the delay and the rate ("sent_*"), connections accepted, and "turns": on each
connection, the times a chunk from the client follows one from the
server (or opens the connection).  A client that waits for each answer
before its next request makes one turn per request; a pipelining client
makes few.  Turns therefore approximate the round trips a client pays.
"""

import collections
import socket
import threading
import time

CHUNK = 256 * 1024
# What a rate-limited direction sends at a time.
SLICE = 16 * 1024
# Bytes in flight per direction before the reader waits (a window).
WINDOW = 32 * 1024 * 1024


class _Conn:
	"""One proxied connection: its sockets and its turn state."""

	def __init__(self, proxy, client, upstream):
		self.proxy = proxy
		self.client = client
		self.upstream = upstream
		self.last = None        # "c2s" or "s2c": who sent last
		self.lock = threading.Lock()
		self.done = 0


class LatencyProxy:
	def __init__(self, upstream, rtt_ms=0.0, host="127.0.0.1", port=0,
		     rate=0):
		self.upstream = upstream
		self.delay = rtt_ms / 2000.0
		self.rate = rate
		self.free_at = {"c2s": 0.0, "s2c": 0.0}
		self.lock = threading.Lock()
		self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.sock.bind((host, port))
		self.sock.listen(128)
		self.host = host
		self.port = self.sock.getsockname()[1]
		self.stopping = False
		self.conns = set()
		self.thread = None
		self.reset()

	# --- control ----------------------------------------------------

	def set_rtt(self, rtt_ms):
		self.delay = rtt_ms / 2000.0

	def set_rate(self, rate):
		"""Bytes a second each way; 0: no limit."""
		self.rate = rate

	def _paced(self, direction, due, n):
		"""When a chunk of @n bytes due at @due may leave."""
		if not self.rate:
			return due
		with self.lock:
			at = max(due, self.free_at[direction])
			self.free_at[direction] = at + n / self.rate
		return at

	def rtt_ms(self):
		return self.delay * 2000.0

	def reset(self):
		with self.lock:
			self.c2s = 0
			self.s2c = 0
			self.c2s_chunks = 0
			self.s2c_chunks = 0
			self.sent = {"c2s": 0, "s2c": 0}
			self.turns = 0
			self.accepted = 0

	def counters(self):
		with self.lock:
			return {
				"rtt_ms": self.rtt_ms(),
				"rate": self.rate,
				"bytes_c2s": self.c2s,
				"bytes_s2c": self.s2c,
				"sent_c2s": self.sent["c2s"],
				"sent_s2c": self.sent["s2c"],
				"chunks_c2s": self.c2s_chunks,
				"chunks_s2c": self.s2c_chunks,
				"turns": self.turns,
				"connections": self.accepted,
				"open": len(self.conns),
			}

	def start(self):
		self.thread = threading.Thread(target=self._accept_loop,
					       name="proxy-accept", daemon=True)
		self.thread.start()
		return self

	def stop(self):
		self.stopping = True
		try:
			# Wake accept() up.
			socket.create_connection((self.host, self.port),
						 timeout=1).close()
		except OSError:
			pass
		self.sock.close()
		with self.lock:
			conns = list(self.conns)
		for c in conns:
			for s in (c.client, c.upstream):
				try:
					s.shutdown(socket.SHUT_RDWR)
				except OSError:
					pass
		if self.thread:
			self.thread.join(5)

	def __enter__(self):
		return self.start()

	def __exit__(self, *exc):
		self.stop()

	# --- forwarding -------------------------------------------------

	def _accept_loop(self):
		while not self.stopping:
			try:
				client, _ = self.sock.accept()
			except OSError:
				return
			if self.stopping:
				client.close()
				return
			try:
				up = socket.create_connection(self.upstream,
							      timeout=10)
				up.settimeout(None)
			except OSError:
				client.close()
				continue
			for s in (client, up):
				s.setsockopt(socket.IPPROTO_TCP,
					     socket.TCP_NODELAY, 1)
			c = _Conn(self, client, up)
			with self.lock:
				self.accepted += 1
				self.conns.add(c)
			self._pump(c, client, up, "c2s")
			self._pump(c, up, client, "s2c")

	def _pump(self, conn, src, dst, direction):
		q = collections.deque()
		cond = threading.Condition()
		state = {"bytes": 0, "eof": False}

		def reader():
			try:
				while True:
					data = src.recv(CHUNK)
					if not data:
						break
					self._count(conn, direction, len(data))
					due = time.monotonic() + self.delay
					with cond:
						while state["bytes"] > WINDOW:
							cond.wait()
						q.append((due, data))
						state["bytes"] += len(data)
						cond.notify_all()
			except OSError:
				pass
			with cond:
				state["eof"] = True
				cond.notify_all()

		def writer():
			ok = True
			while True:
				with cond:
					while not q and not state["eof"]:
						cond.wait()
					if not q:
						break
					due, data = q.popleft()
					state["bytes"] -= len(data)
					cond.notify_all()
				# Paced a slice at a time, so that connections
				# share the rate by bytes, not by chunks.
				step = SLICE if self.rate else len(data)
				for i in range(0, len(data) if ok else 0,
					       step):
					piece = data[i:i + step]
					at = self._paced(direction, max(
						due, time.monotonic()), len(piece))
					wait = at - time.monotonic()
					if wait > 0:
						time.sleep(wait)
					if ok:
						try:
							dst.sendall(piece)
						except OSError:
							ok = False
					if ok:
						self._count_sent(direction,
								 len(piece))
			try:
				dst.shutdown(socket.SHUT_WR)
			except OSError:
				pass
			self._finish(conn)

		for fn, name in ((reader, "r"), (writer, "w")):
			threading.Thread(target=fn, daemon=True,
					 name="proxy-%s-%s" % (direction,
							       name)).start()

	def _count(self, conn, direction, n):
		with self.lock:
			if direction == "c2s":
				self.c2s += n
				self.c2s_chunks += 1
				if conn.last != "c2s":
					self.turns += 1
			else:
				self.s2c += n
				self.s2c_chunks += 1
			conn.last = direction

	def _count_sent(self, direction, n):
		with self.lock:
			self.sent[direction] += n

	def _finish(self, conn):
		with conn.lock:
			conn.done += 1
			last = conn.done == 2
		if not last:
			return
		for s in (conn.client, conn.upstream):
			try:
				s.close()
			except OSError:
				pass
		with self.lock:
			self.conns.discard(conn)
