"""MariaDB: the database port and its fact types, the pymysql adapter, root's SQL through the
socket, the fake, GTIDs, TLS.
"""
