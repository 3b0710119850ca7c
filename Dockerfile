# taskrelay: one slim image for every process (migrate, api, relay, worker).
# Dependencies come from requirements-runtime.lock, so an image rebuilt later is the same image:
# every file pip installs is checked against the lock's sha256 hashes (--require-hashes), and
# the project's own wheel is built offline by a hash-checked setuptools (requirements-build.lock)
# in a venv of its own, so no unpinned build dependency is fetched and none reaches the image.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/taskrelay && python -m venv /opt/build
WORKDIR /src
COPY requirements-runtime.lock requirements-build.lock ./
RUN /opt/taskrelay/bin/pip install --require-hashes --no-deps -r requirements-runtime.lock \
 && /opt/build/bin/pip install --require-hashes --no-deps -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/taskrelay/bin/pip install --no-deps --no-index /wheels/taskrelay-*.whl

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/taskrelay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TASKRELAY_LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin taskrelay
COPY --from=build /opt/taskrelay /opt/taskrelay
USER taskrelay
WORKDIR /tmp
EXPOSE 8000 8001 8002
# Every process stops cleanly on SIGTERM within 30 s (compose's stop_grace_period is 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["taskrelay"]
CMD ["--help"]
