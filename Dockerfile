# taskrelay: one slim image for every process (migrate, api, relay, worker).
# Dependencies come from requirements-runtime.lock, so an image rebuilt later is the same image.

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/taskrelay
WORKDIR /src
COPY requirements-runtime.lock ./
RUN /opt/taskrelay/bin/pip install --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/taskrelay/bin/pip install --no-deps .

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
