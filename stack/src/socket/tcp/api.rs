//! The BSD-like calls on [`TcpLayer`]: socket, bind, listen, accept, connect, send, recv,
//! shutdown, close, abort, queries and socket options.
//!
//! Every call checks its handle (a stale or closed one gives `BadHandle`), changes the
//! socket, then lets the layer `settle` it (queues, maps, timers), so the layer's
//! invariants hold again when the call returns. Calls that need the time take the
//! caller's [`TcpContext`].

use super::socket::{Socket, SocketOptions};
use super::types::ConnKey;
use super::{
    AcceptError, BindError, CloseError, CongestionAlgorithm, ConnectError, ListenError, Listener,
    OptionError, RecvError, SendError, Shutdown, ShutdownError, TcpContext, TcpError, TcpHandle,
    TcpInfo, TcpLayer, TcpSocketInfo, TcpState,
};
use crate::socket::common::{
    each_half, half_key, half_of, is_bad_unicast, normalize, port_halves, socket_addr,
};
use crate::time::Duration;
use core::net::{IpAddr, SocketAddr};

impl TcpLayer {
    /// A user-visible socket (not orphaned by close).
    fn user_sock(&self, h: TcpHandle) -> Option<&Socket> {
        self.user_item(h).map(|it| &*it.socket)
    }

    /// A new socket in CLOSED with the layer's default options (socket(2)).
    pub fn socket(&mut self) -> TcpHandle {
        self.alloc(SocketOptions::from_config(&self.config))
    }

    /// Binds to a local address, IPv4 or IPv6 (never IPv4-mapped: the socket API maps
    /// those to IPv4); port 0 picks an ephemeral port (bind(2)). `[::]` takes IPv4
    /// connections too unless [`set_v6only`](Self::set_v6only) said otherwise.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` if already bound, `AddrInUse` if another socket holds
    /// the port (unless both allow reuse and none listens), `NoPortsAvailable`.
    pub fn bind(&mut self, h: TcpHandle, addr: SocketAddr) -> Result<(), BindError> {
        let addr = normalize(addr);
        let it = self.user_item(h).ok_or(BindError::BadHandle)?;
        if it.meta.port_claim.is_some() || it.socket.state != TcpState::Closed {
            return Err(BindError::InvalidState);
        }
        let reuse = it.socket.opts.reuse_addr;
        let halves = port_halves(addr.ip(), it.socket.opts.v6only);
        let port = if addr.port() == 0 {
            self.pick_ephemeral(addr.ip(), None, halves)
                .ok_or(BindError::NoPortsAvailable)?
        } else {
            let usage = self.ports.get(&addr.port()).copied().unwrap_or_default();
            if usage.conflicts(halves, reuse) {
                return Err(BindError::AddrInUse);
            }
            addr.port()
        };
        self.claim_port(port, true, halves);
        let it = self.item_mut(h).ok_or(BindError::BadHandle)?;
        it.socket.local = socket_addr(addr.ip(), port);
        it.meta.port_claim = Some((port, true, halves));
        Ok(())
    }

    /// Binds (if needed) and listens with a backlog bounding both the SYN queue and the
    /// accept queue (listen(2)).
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` when connected, `AddrInUse` when another socket
    /// listens on the port, `NoPortsAvailable`.
    pub fn listen(
        &mut self,
        h: TcpHandle,
        addr: SocketAddr,
        backlog: usize,
    ) -> Result<(), ListenError> {
        let it = self.user_item(h).ok_or(ListenError::BadHandle)?;
        let backlog = backlog.clamp(1, self.config.max_backlog.max(1));
        match it.socket.state {
            TcpState::Listen => {
                // listen(2) again only updates the backlog.
                if let Some(l) = self.item_mut(h).and_then(|it| it.meta.listener.as_mut()) {
                    l.backlog = backlog;
                }
                return Ok(());
            }
            TcpState::Closed => {}
            _ => return Err(ListenError::InvalidState),
        }
        if it.meta.port_claim.is_none() {
            self.bind(h, addr).map_err(|e| match e {
                BindError::BadHandle => ListenError::BadHandle,
                BindError::InvalidState => ListenError::InvalidState,
                BindError::AddrInUse => ListenError::AddrInUse,
                BindError::NoPortsAvailable => ListenError::NoPortsAvailable,
            })?;
        }
        let it = self.user_item(h).ok_or(ListenError::BadHandle)?;
        let port = it.socket.local.port();
        let halves = it.meta.port_claim.map_or(0, |(_, _, halves)| halves);
        if each_half(halves).any(|half| self.listeners.contains_key(&half_key(port, half))) {
            return Err(ListenError::AddrInUse);
        }
        for half in each_half(halves) {
            self.listeners.insert(half_key(port, half), h.index());
        }
        if let Some((it, _, ev)) = self.user_parts(h) {
            it.meta.listener = Some(Box::new(Listener {
                backlog,
                ..Listener::default()
            }));
            it.socket.set_state(ev, TcpState::Listen);
        }
        Ok(())
    }

    /// Takes an established connection from the accept queue (accept(2)).
    ///
    /// # Errors
    /// `BadHandle`, `NotListening`, `WouldBlock` when the queue is empty.
    pub fn accept(&mut self, h: TcpHandle) -> Result<(TcpHandle, SocketAddr), AcceptError> {
        let it = self.user_item_mut(h).ok_or(AcceptError::BadHandle)?;
        let l = it.meta.listener.as_mut().ok_or(AcceptError::NotListening)?;
        let child = l.accept_queue.pop_front().ok_or(AcceptError::WouldBlock)?;
        let c = self.item_mut(child).ok_or(AcceptError::WouldBlock)?;
        c.meta.parent = None;
        c.meta.in_accept_queue = false;
        Ok((child, c.socket.remote))
    }

    /// Opens a connection to `remote` (connect(2)); the SYN goes out on the next
    /// dispatch. A socket bound to a wildcard gets our address of `remote`'s family
    /// ([`LocalAddrs::source_for`](crate::socket::LocalAddrs::source_for)) and, if
    /// unbound, an RFC 6056 ephemeral port.
    ///
    /// # Errors
    /// `BadHandle`, `IsConnected`, `InProgress`, `InvalidState` for a listener,
    /// `Unaddressable` for port 0, a non-unicast address, an address of another family
    /// than the bound one (or IPv4 from `[::]` with IPV6_V6ONLY), or a family we have
    /// no address of; `AddrInUse`, `NoPortsAvailable`.
    pub fn connect(
        &mut self,
        h: TcpHandle,
        cx: &TcpContext,
        remote: SocketAddr,
    ) -> Result<(), ConnectError> {
        let remote = normalize(remote);
        let it = self.user_item(h).ok_or(ConnectError::BadHandle)?;
        let s = &it.socket;
        match s.state {
            TcpState::Closed => {}
            TcpState::Listen => return Err(ConnectError::InvalidState),
            TcpState::SynSent | TcpState::SynReceived => return Err(ConnectError::InProgress),
            _ => return Err(ConnectError::IsConnected),
        }
        let rip = remote.ip();
        if remote.port() == 0 || is_bad_unicast(rip) {
            return Err(ConnectError::Unaddressable);
        }
        let bound = s.local.ip();
        let family_ok = match (bound, rip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
            // Dual stack: `[::]` reaches IPv4 peers unless IPV6_V6ONLY.
            (IpAddr::V6(b), IpAddr::V4(_)) => b.is_unspecified() && !s.opts.v6only,
            // An unbound socket's placeholder is `0.0.0.0:0`: any family.
            (IpAddr::V4(b), IpAddr::V6(_)) => b.is_unspecified() && it.meta.port_claim.is_none(),
        };
        if !family_ok {
            return Err(ConnectError::Unaddressable);
        }
        let local_ip = if bound.is_unspecified() {
            cx.local
                .source_for(rip)
                .ok_or(ConnectError::Unaddressable)?
        } else {
            bound
        };
        let local = match it.meta.port_claim {
            Some((port, _, _)) => {
                let local = socket_addr(local_ip, port);
                if self.conns.contains_key(&ConnKey { local, remote }) {
                    return Err(ConnectError::AddrInUse);
                }
                local
            }
            None => {
                let half = half_of(local_ip);
                let port = self
                    .pick_ephemeral(local_ip, Some(remote), half)
                    .ok_or(ConnectError::NoPortsAvailable)?;
                self.claim_port(port, false, half);
                if let Some(it) = self.item_mut(h) {
                    it.meta.port_claim = Some((port, false, half));
                }
                socket_addr(local_ip, port)
            }
        };
        let key = ConnKey { local, remote };
        let iss = self.isn_for(key, cx.now);
        let ts_offset = self.ts_offset_for(key);
        let idx = h.index();
        {
            let (it, cfg, ev) = self.parts(idx).ok_or(ConnectError::BadHandle)?;
            it.meta.in_conns = true;
            let s = &mut it.socket;
            s.local = local;
            s.remote = remote;
            s.ts_offset = ts_offset;
            s.connect(cx, cfg, ev, iss);
        }
        self.conns.insert(key, idx);
        self.settle(idx, TcpState::Closed, true);
        self.tidy_timers();
        Ok(())
    }

    /// Queues data to send; returns how many bytes were taken (send(2)).
    ///
    /// # Errors
    /// `BadHandle`; `NotConnected` before connect; `WouldBlock` while the handshake is
    /// in progress or the buffer is full; `Closed` after shutdown(write); the stored
    /// connection error (`Reset`, `TimedOut`, ...) once, then `Closed`.
    pub fn send(&mut self, h: TcpHandle, data: &[u8]) -> Result<usize, SendError> {
        self.send_more(h, data, false)
    }

    /// [`send`](Self::send) with Linux's MSG_MORE when `more`: the partial segment at
    /// the end of what is queued waits, as under TCP_CORK, for a later send without it,
    /// the FIN (shutdown or close), or the 200 ms cork ceiling. A send without it (or
    /// [`send`](Self::send)) ends the hold; an empty send changes nothing.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_more(&mut self, h: TcpHandle, data: &[u8], more: bool) -> Result<usize, SendError> {
        let it = self.user_item_mut(h).ok_or(SendError::BadHandle)?;
        let in_conns = it.meta.in_conns;
        let s = &mut it.socket;
        if let Some(e) = s.error.take() {
            return Err(e.into());
        }
        if s.shut_wr {
            return Err(SendError::Closed);
        }
        match s.state {
            TcpState::Established | TcpState::CloseWait => {}
            TcpState::SynSent | TcpState::SynReceived => return Err(SendError::WouldBlock),
            TcpState::Closed if in_conns || s.snd_max != s.iss => return Err(SendError::Closed),
            TcpState::Closed | TcpState::Listen => return Err(SendError::NotConnected),
            _ => return Err(SendError::Closed),
        }
        if data.is_empty() {
            return Ok(0);
        }
        s.set_more(more);
        let n = s.enqueue(data);
        if n == 0 {
            return Err(SendError::WouldBlock);
        }
        self.mark_dirty(h.index());
        Ok(n)
    }

    /// Reads received data; `Ok(0)` means end of stream after the peer's FIN (recv(2)).
    ///
    /// # Errors
    /// `BadHandle`, `NotConnected`, `WouldBlock` when nothing is ready, or the stored
    /// connection error (reported once).
    pub fn recv(&mut self, h: TcpHandle, buf: &mut [u8]) -> Result<usize, RecvError> {
        let it = self.user_item_mut(h).ok_or(RecvError::BadHandle)?;
        let in_conns = it.meta.in_conns;
        let s = &mut it.socket;
        if !s.rx.is_empty() && !buf.is_empty() {
            let n = s.rx.dequeue_slice(buf);
            s.on_app_read();
            let prev = s.state;
            self.settle(h.index(), prev, true);
            self.tidy_timers();
            return Ok(n);
        }
        Self::recv_empty(s, in_conns, buf.is_empty())
    }

    /// Reads received data in place, without copying it out: `f` sees the longest
    /// contiguous run of readable bytes and returns how many of them it consumed (at
    /// most their number); `recv_with` returns that count. The receive buffer is a ring,
    /// so a second call may see the bytes after the wrap. Like smoltcp's `recv`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); `f` is not called when there is nothing to read.
    pub fn recv_with(
        &mut self,
        h: TcpHandle,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, RecvError> {
        let it = self.user_item_mut(h).ok_or(RecvError::BadHandle)?;
        let in_conns = it.meta.in_conns;
        let s = &mut it.socket;
        if s.rx.is_empty() {
            return Self::recv_empty(s, in_conns, false);
        }
        let data = s.rx.get_allocated(0, s.rx.len());
        let n = f(data).min(data.len());
        s.rx.dequeue_allocated(n);
        if n > 0 {
            s.on_app_read();
            let prev = s.state;
            self.settle(h.index(), prev, true);
            self.tidy_timers();
        }
        Ok(n)
    }

    /// What `recv` returns when it has no data to hand over.
    fn recv_empty(s: &mut Socket, in_conns: bool, empty_buf: bool) -> Result<usize, RecvError> {
        if let Some(e) = s.error.take() {
            return Err(e.into());
        }
        if s.fin_received || s.shut_rd || empty_buf {
            return Ok(0);
        }
        match s.state {
            TcpState::Closed if s.snd_max != s.iss || in_conns => Ok(0),
            TcpState::Closed | TcpState::Listen => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// Copies received data without consuming it (MSG_PEEK).
    ///
    /// # Errors
    /// As [`recv`](Self::recv), except that a stored error is not consumed.
    pub fn peek(&self, h: TcpHandle, buf: &mut [u8]) -> Result<usize, RecvError> {
        let s = self.user_sock(h).ok_or(RecvError::BadHandle)?;
        if !s.rx.is_empty() {
            return Ok(s.rx.read_allocated(0, buf));
        }
        if let Some(e) = s.error {
            return Err(e.into());
        }
        if s.fin_received || s.shut_rd || buf.is_empty() {
            return Ok(0);
        }
        match s.state {
            TcpState::Closed | TcpState::Listen => Err(RecvError::NotConnected),
            _ => Err(RecvError::WouldBlock),
        }
    }

    /// Shuts down reading, writing or both (shutdown(2)); writing sends a FIN after the
    /// queued data.
    ///
    /// # Errors
    /// `BadHandle`, `NotConnected` when not connected.
    pub fn shutdown(&mut self, h: TcpHandle, how: Shutdown) -> Result<(), ShutdownError> {
        let (it, _, ev) = self.user_parts(h).ok_or(ShutdownError::BadHandle)?;
        let s = &mut it.socket;
        if matches!(s.state, TcpState::Closed) {
            return Err(ShutdownError::NotConnected);
        }
        let prev = s.state;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            s.shut_rd = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            s.shutdown_write(ev);
        }
        self.settle(h.index(), prev, true);
        self.tidy_timers();
        Ok(())
    }

    /// Closes the socket (close(2)): graceful FIN, or RST when unread data remains
    /// (RFC 9293 §3.10.4, Linux) or linger is zero. The handle becomes invalid; the
    /// connection lives on in the layer until CLOSED (TIME-WAIT included); an orphan's
    /// FIN-WAIT-2 timeout starts at `cx.now`.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn close(&mut self, h: TcpHandle, cx: &TcpContext) -> Result<(), CloseError> {
        let now = cx.now;
        let (it, cfg, ev) = self.user_parts(h).ok_or(CloseError::BadHandle)?;
        let s = &mut it.socket;
        let unread = !s.rx.is_empty();
        let linger0 = s.opts.linger == Some(Duration::ZERO);
        let prev = s.state;
        match prev {
            TcpState::Closed | TcpState::Listen | TcpState::SynSent => {
                self.abort_handle(h);
                return Ok(());
            }
            _ if unread || linger0 => {
                self.abort_handle(h);
                return Ok(());
            }
            _ => {}
        }
        s.close_graceful(now, cfg, ev);
        self.settle(h.index(), prev, true);
        self.tidy_timers();
        Ok(())
    }

    /// Aborts the connection: RST if synchronized, then the socket is freed.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn abort(&mut self, h: TcpHandle) -> Result<(), CloseError> {
        self.user_sock(h).ok_or(CloseError::BadHandle)?;
        self.abort_handle(h);
        self.tidy_timers();
        Ok(())
    }

    /// The connection state, or `None` for a bad handle.
    pub fn state(&self, h: TcpHandle) -> Option<TcpState> {
        self.user_sock(h).map(|s| s.state)
    }

    /// True when `recv` would return data, EOF or an error without blocking (POLLIN).
    pub fn can_recv(&self, h: TcpHandle) -> bool {
        self.user_item(h).is_some_and(|it| {
            let s = &it.socket;
            !s.rx.is_empty()
                || s.fin_received
                || s.error.is_some()
                || (it
                    .meta
                    .listener
                    .as_ref()
                    .is_some_and(|l| !l.accept_queue.is_empty()))
        })
    }

    /// True when `send` would accept bytes (POLLOUT).
    pub fn can_send(&self, h: TcpHandle) -> bool {
        self.user_sock(h).is_some_and(|s| {
            matches!(s.state, TcpState::Established | TcpState::CloseWait)
                && !s.shut_wr
                && s.tx.window() > 0
        })
    }

    /// Bytes `send` would accept now: free space in the send buffer, 0 when sending is
    /// not possible (SO_SNDBUF minus SIOCOUTQ).
    pub fn send_space(&self, h: TcpHandle) -> usize {
        if self.can_send(h) {
            self.user_sock(h).map_or(0, |s| s.tx.window())
        } else {
            0
        }
    }

    /// [`send_space`](Self::send_space) for an application that, finding none, waits
    /// for room instead of writing (an echo that reads only what it can send): a full
    /// buffer counts as a refused write, so send-buffer autotuning grows it as it does
    /// for a `send` that did not fit (Linux: poll on an unwritable socket sets
    /// SOCK_NOSPACE).
    pub fn send_space_or_note_full(&mut self, h: TcpHandle) -> usize {
        let space = self.send_space(h);
        if space == 0 {
            if let Some(it) = self.user_item_mut(h) {
                it.socket.note_send_full();
            }
        }
        space
    }

    /// True when all data was read and the peer sent FIN (recv would return 0).
    pub fn is_readable_eof(&self, h: TcpHandle) -> bool {
        self.user_sock(h)
            .is_some_and(|s| s.rx.is_empty() && s.fin_received)
    }

    /// Takes the pending error, terminal or soft (SO_ERROR).
    pub fn take_error(&mut self, h: TcpHandle) -> Option<TcpError> {
        let s = &mut self.user_item_mut(h)?.socket;
        s.error.take().or_else(|| s.soft_error.take())
    }

    /// The local address (getsockname(2)), in the family it was bound or connected with.
    pub fn local_addr(&self, h: TcpHandle) -> Option<SocketAddr> {
        self.user_item(h)
            .filter(|it| it.meta.port_claim.is_some())
            .map(|it| it.socket.local)
    }

    /// The remote address (getpeername(2)).
    pub fn peer_addr(&self, h: TcpHandle) -> Option<SocketAddr> {
        self.user_sock(h)
            .filter(|s| s.remote.port() != 0)
            .map(|s| s.remote)
    }

    /// A TCP_INFO-like snapshot.
    pub fn info(&self, h: TcpHandle) -> Option<TcpInfo> {
        self.user_sock(h).map(|s| s.info())
    }

    /// A diagnostic snapshot of any socket of the layer, including ones the user closed
    /// that are still finishing (FIN-WAIT, LAST-ACK) and connections still in a listen
    /// queue (`ss -tai` shows those too). A closed connection in TIME-WAIT has no
    /// socket any more (`None` here); [`sockets`](Self::sockets) lists it.
    pub fn socket_info(&self, h: TcpHandle) -> Option<TcpSocketInfo> {
        self.item(h).map(|it| Self::diag(&it.socket))
    }

    /// Every socket of the layer, as [`socket_info`](Self::socket_info), in slab order,
    /// then the compact TIME-WAIT entries.
    pub fn sockets(&self) -> impl Iterator<Item = TcpSocketInfo> + '_ {
        self.slab
            .iter()
            .map(|(_, it)| Self::diag(&it.socket))
            .chain(self.time_wait_infos())
    }

    fn diag(s: &Socket) -> TcpSocketInfo {
        TcpSocketInfo {
            handle: s.handle,
            local: s.local,
            remote: s.remote,
            orphaned: s.user_closed,
            info: s.info(),
        }
    }

    fn with_opts(
        &mut self,
        h: TcpHandle,
        f: impl FnOnce(&mut Socket) -> Result<(), OptionError>,
    ) -> Result<(), OptionError> {
        let s = &mut self.user_item_mut(h).ok_or(OptionError::BadHandle)?.socket;
        f(s)?;
        let prev = s.state;
        self.settle(h.index(), prev, true);
        self.tidy_timers();
        Ok(())
    }

    /// Disables Nagle's algorithm (TCP_NODELAY).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_nodelay(&mut self, h: TcpHandle, nodelay: bool) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.nodelay = nodelay;
            Ok(())
        })
    }

    /// TCP_NODELAY.
    pub fn nodelay(&self, h: TcpHandle) -> Option<bool> {
        self.user_sock(h).map(|s| s.opts.nodelay)
    }

    /// TCP_CORK: while set, partial segments wait for more data, the FIN or the 200 ms
    /// cork ceiling; clearing it sends what waits at once, past Nagle (Linux
    /// TCP_NAGLE_PUSH). Inherited by accepted connections.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_cork(&mut self, h: TcpHandle, cork: bool) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.set_cork(cork);
            Ok(())
        })
    }

    /// TCP_CORK.
    pub fn cork(&self, h: TcpHandle) -> Option<bool> {
        self.user_sock(h).map(|s| s.opts.cork)
    }

    /// The TTL (IPv4) or hop limit (IPv6) of this socket's segments from now on
    /// (IP_TTL, IPV6_UNICAST_HOPS); `None` restores the interface's. Inherited by
    /// connections accepted from a listener.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_hop_limit(&mut self, h: TcpHandle, hops: Option<u8>) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.hop_limit = hops;
            Ok(())
        })
    }

    /// The TOS (IPv4) or traffic class (IPv6) of this socket's segments from now on
    /// (IP_TOS, IPV6_TCLASS). The two ECN bits are TCP's own, so they are cleared, as
    /// Linux does for stream sockets. Inherited by accepted connections.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_tclass(&mut self, h: TcpHandle, tclass: u8) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.tclass = tclass & !0b11;
            Ok(())
        })
    }

    /// Enables keepalive probes (SO_KEEPALIVE).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_keepalive(
        &mut self,
        h: TcpHandle,
        cx: &TcpContext,
        on: bool,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.keepalive = on;
            s.set_keepalive_timer(cx.now);
            Ok(())
        })
    }

    /// Keepalive idle time, probe interval and probe count (TCP_KEEPIDLE/INTVL/CNT).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_keepalive_params(
        &mut self,
        h: TcpHandle,
        idle: Duration,
        interval: Duration,
        count: u32,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.keep_idle = idle;
            s.opts.keep_intvl = interval;
            s.opts.keep_cnt = count;
            Ok(())
        })
    }

    /// Receive buffer size (SO_RCVBUF); only before the connection starts. Turns receive
    /// autotuning off for this socket, as an explicit SO_RCVBUF does on Linux.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once connecting.
    pub fn set_recv_buffer_size(&mut self, h: TcpHandle, len: usize) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            if !matches!(s.state, TcpState::Closed | TcpState::Listen) {
                return Err(OptionError::InvalidState);
            }
            s.opts.rx_buffer_len = len.max(1);
            // An explicit size turns autotuning off (Linux SOCK_RCVBUF_LOCK).
            s.opts.rx_buffer_max = s.opts.rx_buffer_len;
            Ok(())
        })
    }

    /// Send buffer size (SO_SNDBUF); only before the connection starts. Turns send
    /// autotuning off for this socket, as an explicit SO_SNDBUF does on Linux.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once connecting.
    pub fn set_send_buffer_size(&mut self, h: TcpHandle, len: usize) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            if !matches!(s.state, TcpState::Closed | TcpState::Listen) {
                return Err(OptionError::InvalidState);
            }
            s.opts.tx_buffer_len = len.max(1);
            // An explicit size turns autotuning off (Linux SOCK_SNDBUF_LOCK).
            s.opts.tx_buffer_max = s.opts.tx_buffer_len;
            Ok(())
        })
    }

    /// Congestion control algorithm (TCP_CONGESTION); only before the connection starts.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once connecting.
    pub fn set_congestion(
        &mut self,
        h: TcpHandle,
        alg: CongestionAlgorithm,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            if !matches!(s.state, TcpState::Closed | TcpState::Listen) {
                return Err(OptionError::InvalidState);
            }
            s.opts.congestion = alg;
            Ok(())
        })
    }

    /// SO_LINGER: `Some(ZERO)` makes close() abort with RST; other values are recorded
    /// for the blocking socket layer.
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_linger(
        &mut self,
        h: TcpHandle,
        linger: Option<Duration>,
    ) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.linger = linger;
            Ok(())
        })
    }

    /// SO_LINGER as set.
    pub fn linger(&self, h: TcpHandle) -> Option<Option<Duration>> {
        self.user_sock(h).map(|s| s.opts.linger)
    }

    /// SO_REUSEADDR: bind may share a port with connections (not with a listener).
    ///
    /// # Errors
    /// `BadHandle`.
    pub fn set_reuse_addr(&mut self, h: TcpHandle, on: bool) -> Result<(), OptionError> {
        self.with_opts(h, |s| {
            s.opts.reuse_addr = on;
            Ok(())
        })
    }

    /// IPV6_V6ONLY: whether a socket bound to `[::]` hears (and reaches) IPv6 only;
    /// off by default, as on Linux (`net.ipv6.bindv6only = 0`). Only before bind.
    ///
    /// # Errors
    /// `BadHandle`, `InvalidState` once bound (Linux: EINVAL).
    pub fn set_v6only(&mut self, h: TcpHandle, on: bool) -> Result<(), OptionError> {
        let it = self.user_item(h).ok_or(OptionError::BadHandle)?;
        if it.meta.port_claim.is_some() || it.socket.state != TcpState::Closed {
            return Err(OptionError::InvalidState);
        }
        self.with_opts(h, |s| {
            s.opts.v6only = on;
            Ok(())
        })
    }

    /// IPV6_V6ONLY as set.
    pub fn v6only(&self, h: TcpHandle) -> Option<bool> {
        self.user_sock(h).map(|s| s.opts.v6only)
    }
}
