#include "sluice/plugin.hpp"
namespace {
void reg(sluice::registrar&) {}
}  // namespace
SLUICE_PLUGIN("auth", "0.1.0", "SPF", reg);
