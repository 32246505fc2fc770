from .cli import main
from .logs import configure
from .logs import log_format_from_env

# Admin commands log their security events (client.created, key.rotated, …) to stderr, as the server does.
configure(log_format_from_env())
main()
