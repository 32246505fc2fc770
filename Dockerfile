# The authsvc server image.
#
#   docker build -t authsvc .
#   docker run --rm -p 127.0.0.1:8000:8000 authsvc            # `python -m authsvc serve`
#   docker run --rm authsvc db upgrade                         # any other command
#
# The build stage makes the wheel and a virtualenv holding it with the pinned deployment
# (requirements.txt); the final stage is the slim base plus that virtualenv: no compilers, no
# build tools, no source tree, run as an unprivileged user. The default interpreter is the one CI
# tests against.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.txt ./
COPY authsvc ./authsvc
COPY deploy/install-server.sh ./deploy/
# Every pinned dependency ships a manylinux wheel, so even this stage needs no compiler.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && sh deploy/install-server.sh /opt/authsvc requirements.txt /wheels/authsvc-*.whl

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/authsvc/bin:$PATH \
    AUTHSVC_BIND=0.0.0.0:8000 \
    AUTHSVC_DATABASE_URL=sqlite:////var/lib/authsvc/authsvc.db \
    AUTHSVC_KEYS_DIR=/var/lib/authsvc/keys
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 authsvc \
    && useradd --system --uid 10001 --gid authsvc --home-dir /var/lib/authsvc --no-create-home \
       --shell /usr/sbin/nologin authsvc \
    && install -d -o authsvc -g authsvc -m 0750 /var/lib/authsvc
COPY --from=build /opt/authsvc /opt/authsvc
# gunicorn loads `wsgi:app` from its working directory.
WORKDIR /app
COPY wsgi.py ./
USER 10001:10001
EXPOSE 8000
# /healthz says the process is up; readiness (/readyz) is the load balancer's and Kubernetes' job.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('AUTHSVC_BIND', ':8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
# gunicorn stops accepting on SIGTERM and finishes in-flight requests within its graceful_timeout
# (20 s): give the container longer than that to stop (compose stop_grace_period, Kubernetes
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "authsvc"]
CMD ["serve"]
