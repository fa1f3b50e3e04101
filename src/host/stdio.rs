//! What ferrun's entry point does before anything else, in place of std's runtime start-up.

/// Makes fds 0–2 exist (each closed one becomes /dev/null, as std's start-up does), so that no
/// file opened later can take stdout's number; then ignores SIGPIPE, as std would, so a write
/// to a closed pipe fails with EPIPE instead of killing ferrun. The executor and every child
/// std spawns set SIGPIPE back to its default.
pub fn sanitize() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on our own array; open of a static path; signal with a constant handler.
    unsafe {
        let polled = libc::poll(fds.as_mut_ptr(), 3, 0) != -1;
        for p in &fds {
            let closed = if polled {
                p.revents & libc::POLLNVAL != 0
            } else {
                libc::fcntl(p.fd, libc::F_GETFD) == -1
            };
            if closed && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd {
                // Nothing to print to; std aborts here too.
                libc::abort();
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
