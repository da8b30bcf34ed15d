// sluice/services.hpp — the service registry: how plugins talk to each other.
//
// Plugins never link to each other. A plugin that offers something (the store offers a
// `mailbox`, the kernel offers `metrics` and `events`) registers an object implementing
// an SDK interface under (kind, name); consumers look it up by kind and, optionally, the
// instance name from their config. Each interface declares `static constexpr kind`.
//
// Thread-safe. Registration happens at startup; lookups may happen at any time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

class service {
 public:
  virtual ~service() = default;
};

class service_registry {
 public:
  virtual ~service_registry() = default;
  // Throws std::invalid_argument if (kind, name) is already registered.
  virtual void add(std::string_view kind, std::string_view name, std::shared_ptr<service> s) = 0;
  // An empty name finds the instance named "default", else the only one of that kind.
  virtual std::shared_ptr<service> find(std::string_view kind,
                                        std::string_view name = {}) const = 0;
  virtual std::vector<std::string> names(std::string_view kind) const = 0;

  // `sluice check-config` (and a reload's validation) build no services. A service
  // factory asked only to validate (instance_context::check_only) declares what it would
  // register instead, so that a consumer validating its own config can still tell a
  // reference to a declared service from a typo: check declared(kind, name) when
  // check_only, find() otherwise.
  virtual void declare(std::string_view kind, std::string_view name) = 0;
  // Whether (kind, name) is registered or declared; an empty name as in find() ("default",
  // else the only one of that kind).
  virtual bool declared(std::string_view kind, std::string_view name = {}) const = 0;

  template <class T>
  std::shared_ptr<T> get(std::string_view name = {}) const {
    // The kind string is the type's identity; static cast is safe because only T
    // registers under T::kind (typeid is unreliable across RTLD_LOCAL libraries).
    return std::static_pointer_cast<T>(find(T::kind, name));
  }
};

}  // namespace sluice
