"""The loopback ceiling for bench/download.sh: serves one file to every GET with
os.sendfile (no copy through user space), one thread per connection, keep-alive.
    python3 bench/sendfile_server.py PORT FILE
"""
import os
import socket
import sys
import threading


def serve(conn, path):
    with conn, conn.makefile("rb") as head:
        while True:
            request = head.readline()
            if not request:
                return
            while head.readline() not in (b"\r\n", b"\n", b""):
                pass
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                             b"content-length: %d\r\n\r\n" % size)
                sent = 0
                while sent < size:
                    n = os.sendfile(conn.fileno(), f.fileno(), sent, size - sent)
                    if n == 0:
                        return
                    sent += n


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    listener = socket.create_server(("127.0.0.1", port), backlog=64)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, path), daemon=True).start()


if __name__ == "__main__":
    main()
