# opts: {"BuildArgs": {"VERSION": "2.0", "HTTP_PROXY": "http://proxy:3128", "UNUSED": "x"}}
ARG VERSION=1.0
ARG BASE=busybox:${VERSION}
FROM ${BASE} AS base
ARG VERSION
ARG LOCAL=local-${VERSION}
ENV PATH=/opt/bin:$PATH GREETING="hello ${LOCAL}"
ENV LOCAL=env-wins
RUN echo $LOCAL $GREETING
LABEL version=$VERSION "quoted label"="a b"
WORKDIR /app
WORKDIR sub
USER ${UNSET:-nobody}:staff
