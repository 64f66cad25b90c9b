# PromptPipe service image: CPython with the IANA time zone database (the tzdata
# package, a dependency) and the standard library's sqlite3.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY actors ./actors
COPY promptpipe ./promptpipe
COPY sql ./sql
RUN pip install . && rm -rf /src

RUN useradd --create-home --uid 10001 promptpipe \
    && mkdir /data && chown promptpipe /data
USER promptpipe
WORKDIR /data

# Inside a container the API must listen on every interface to be reachable, and
# PromptPipe refuses a non-loopback address without API_TOKEN: pass one with -e.
ENV STATE_DIR=/data \
    API_ADDR=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080

ENTRYPOINT ["promptpipe"]
CMD ["serve"]
