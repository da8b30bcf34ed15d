#!/usr/bin/env ruby
# Drives Sluice's POP3 listener with Ruby's net/pop (the client Zammad uses): list the
# messages, read one, delete it, and finish (QUIT) without an error.
#
# usage: netpop_client.rb HOST PORT USER PASS [CAFILE]   (CAFILE: POP3S with verification)
# Exit status 0 when everything worked; prints the sizes and what it deleted.
require 'net/pop'
require 'openssl'

host, port, user, pass, cafile = ARGV
port = Integer(port)
pop = Net::POP3.new(host, port)
if cafile
  pop.enable_ssl(OpenSSL::SSL::VERIFY_PEER, cafile)
end
pop.open_timeout = 20
pop.read_timeout = 20
pop.start(user, pass)
mails = pop.mails
abort "no messages" if mails.empty?
total = 0
mails.each do |m|
  # The size LIST reported must match what RETR delivered (poplib-style counting:
  # net/pop hands back the message with CRLF line ends, dot-stuffing undone).
  body = m.pop
  abort "size mismatch for #{m.number}: LIST #{m.length}, RETR #{body.bytesize}" if body.bytesize != m.length
  total += m.length
  puts "message #{m.number}: #{m.length} octets, uid #{m.unique_id}"
end
first = mails.first
header = first.header
abort "no Subject in TOP" unless header =~ /^Subject: /
first.delete
puts "deleted #{first.number} (#{first.unique_id})"
pop.finish   # QUIT: raises Net::POPError unless the server answered +OK
puts "net/pop: finished, #{mails.size} listed, #{total} octets"
