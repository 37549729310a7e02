"""Starting a subprocess that a test stops with SIGINT, as a user's Ctrl-C would."""
import signal


def default_sigint() -> None:
    """``preexec_fn``: SIGINT back to its default in the child. A shell's background job (``cmd &``
    without job control, e.g. a CI script started with ``nohup ... &``) ignores SIGINT, its children
    inherit that, and Python then installs no KeyboardInterrupt handler: the node or console would
    never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
