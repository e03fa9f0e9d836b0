"""The only I/O: AF_PACKET socket, route discovery, firewall guard, pcap writer."""
