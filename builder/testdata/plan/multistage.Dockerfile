# opts: {"Target": "final"}
FROM golang:1.22 AS build
RUN --mount=type=cache,target=/root/.cache go build -o /out/app .

FROM busybox AS test
COPY --from=build /out/app /app
RUN /app -test

FROM alpine AS tools
RUN apk add curl

FROM scratch AS final
COPY --from=build --chown=10:10 --chmod=0755 /out/app /usr/bin/app
COPY --from=tools /usr/bin/curl /usr/bin/
COPY --from=docker.io/library/nginx:1 /etc/nginx/nginx.conf /etc/
EXPOSE 80 443/udp 7000-7002
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --retries=3 CMD ["/usr/bin/app", "health"]
ENTRYPOINT ["/usr/bin/app"]
CMD ["serve"]
