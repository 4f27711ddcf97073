# escape=`
FROM busybox
RUN echo one `
    two
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
RUN echo three | cat
CMD echo shell form
ENTRYPOINT echo entry
ONBUILD RUN echo triggered
COPY --parents --exclude=*.tmp src/./a/*.go /dst/
ADD --chown=app --chmod=600 archive.tar.gz /opt/
