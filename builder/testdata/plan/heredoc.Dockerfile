# syntax=docker/dockerfile:1
# check=skip=all
FROM busybox
ARG NAME=world
RUN <<EOF
echo hello ${NAME}
echo second line
EOF
RUN <<-SCRIPT
	#!/bin/sh
	echo from a script
SCRIPT
COPY <<EOF /etc/greeting
hello $NAME
EOF
COPY <<"EOF" /etc/raw
hello $NAME
EOF
RUN --network=none <<A cat - > /a
content
A
