// asio.cpp — the one compiled copy of Boost.Asio (and Asio SSL) in the process.
//
// Everything links libsluice_sdk with BOOST_ASIO_SEPARATE_COMPILATION and
// BOOST_ASIO_DYN_LINK, so the scheduler, reactor, service registry and thread-local call
// stacks exist once: a plugin's timers, strands and sockets run on the kernel's
// io_context exactly like the kernel's own.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
